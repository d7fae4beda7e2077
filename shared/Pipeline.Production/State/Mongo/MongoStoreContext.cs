using System.Text.Json;
using MongoDB.Bson;
using MongoDB.Driver;
using Polly;
using Polly.Retry;

namespace Pipeline.Production.State.Mongo;

/// <summary>
/// The MongoDB database every Mongo store shares (a replica set, even a single-node one): the client, the
/// collections by name, and the rules every store follows — majority writes and reads, a retry for transient
/// failures of operations that are safe to repeat, duplicate keys told apart from other errors.
/// </summary>
public sealed class MongoStoreContext
{
    public const string FileSagas = "file_sagas";
    public const string RunsCollection = "runs";
    public const string CatalogCollection = "catalog";
    public const string MergeOutputs = "merge_outputs";
    public const string MergedFiles = "merged_files";
    /// <summary>The throughput log (the hourly "activity" collection of earlier versions is no longer read).</summary>
    public const string ActivityCollection = "throughput";
    public const string InstancesCollection = "instances";
    public const string AlertsCollection = "alerts";
    public const string PausedCollection = "paused";
    public const string AreaFilesCollection = "area_files";
    public const string AreasCollection = "areas";
    public const string MoversCollection = "movers";
    public const string SettingsCollection = "settings";
    public const string CampaignsCollection = "campaigns";
    public const string CalibrationsCollection = "calibrations";
    public const string StateCountsCollection = "state_counts";
    public const string AnnouncementsCollection = "run_announcements";
    public const string MigrationsCollection = "migrations";
    public const string RunFilesCollection = "run_files";
    public const string RunTimesCollection = "run_times";
    public const string SingletonLeasesCollection = "singleton_leases";

    /// <summary>Every collection of the stores, created at start-up (never implicitly inside a transaction).</summary>
    public static IReadOnlyList<string> Collections { get; } =
    [
        FileSagas, RunsCollection, CatalogCollection, MergeOutputs, MergedFiles, ActivityCollection, InstancesCollection, AlertsCollection,
        PausedCollection, AreaFilesCollection, AreasCollection, MoversCollection, SettingsCollection, CampaignsCollection,
        CalibrationsCollection, StateCountsCollection, AnnouncementsCollection, MigrationsCollection, RunFilesCollection, RunTimesCollection,
        SingletonLeasesCollection,
    ];

    /// <summary>The oldest server the stores run on: transactions that create nothing implicitly, and majority reads in them.</summary>
    public static readonly Version OldestServer = new(4, 4);

    /// <summary>How long a write waits for a majority before it fails, unless the options say otherwise.</summary>
    public static readonly TimeSpan DefaultWriteTimeout = TimeSpan.FromSeconds(10);

    private const int DuplicateKey = 11000;

    // Documents kept as JSON (announcements, campaign definitions): read whole, never queried into.
    public static readonly JsonSerializerOptions AnnouncementJson = new(JsonSerializerDefaults.Web);

    // The driver already retries one failed read or write once (retryable reads and writes); this covers a
    // primary election or a network blip that lasts longer. Only operations that are safe to repeat use it.
    private static readonly ResiliencePipeline Transient = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder()
                .Handle<MongoConnectionException>()
                .Handle<MongoNotPrimaryException>()
                .Handle<MongoNodeIsRecoveringException>()
                .Handle<TimeoutException>(),
            MaxRetryAttempts = 5,
            Delay = TimeSpan.FromMilliseconds(200),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
        })
        .Build();

    /// <summary>The stores' database; call <see cref="InitialiseAsync"/> before the first write.</summary>
    public MongoStoreContext(IMongoClient client, string databaseName)
    {
        MongoMapping.Register();
        Client = client;
        Database = client.GetDatabase(databaseName);
        Sagas = Database.GetCollection<FileState>(FileSagas);
        Runs = Database.GetCollection<RunDocument>(RunsCollection);
        Catalog = Database.GetCollection<CatalogEntry>(CatalogCollection);
        Outputs = Database.GetCollection<PendingOutput>(MergeOutputs);
        Merged = Database.GetCollection<MergedFileRecord>(MergedFiles);
        Activity = Database.GetCollection<BsonDocument>(ActivityCollection);
        Instances = Database.GetCollection<InstanceRecord>(InstancesCollection);
        Alerts = Database.GetCollection<BsonDocument>(AlertsCollection);
        Paused = Database.GetCollection<PausedStage>(PausedCollection);
        AreaFiles = Database.GetCollection<BsonDocument>(AreaFilesCollection);
        Areas = Database.GetCollection<BsonDocument>(AreasCollection);
        Movers = Database.GetCollection<BsonDocument>(MoversCollection);
        Settings = Database.GetCollection<BsonDocument>(SettingsCollection);
        Campaigns = Database.GetCollection<BsonDocument>(CampaignsCollection);
        Calibrations = Database.GetCollection<BsonDocument>(CalibrationsCollection);
        StateCounts = Database.GetCollection<BsonDocument>(StateCountsCollection);
        Announcements = Database.GetCollection<BsonDocument>(AnnouncementsCollection);
        RunFiles = Database.GetCollection<BsonDocument>(RunFilesCollection);
        RunTimes = Database.GetCollection<BsonDocument>(RunTimesCollection);
        SingletonLeases = Database.GetCollection<BsonDocument>(SingletonLeasesCollection);
    }

    public IMongoClient Client { get; }
    public IMongoDatabase Database { get; }
    public IMongoCollection<FileState> Sagas { get; }
    public IMongoCollection<RunDocument> Runs { get; }
    public IMongoCollection<CatalogEntry> Catalog { get; }
    public IMongoCollection<PendingOutput> Outputs { get; }
    public IMongoCollection<MergedFileRecord> Merged { get; }
    public IMongoCollection<BsonDocument> Activity { get; }
    public IMongoCollection<InstanceRecord> Instances { get; }
    public IMongoCollection<BsonDocument> Alerts { get; }
    public IMongoCollection<PausedStage> Paused { get; }
    public IMongoCollection<BsonDocument> AreaFiles { get; }
    public IMongoCollection<BsonDocument> Areas { get; }
    public IMongoCollection<BsonDocument> Movers { get; }
    public IMongoCollection<BsonDocument> Settings { get; }
    public IMongoCollection<BsonDocument> Campaigns { get; }
    public IMongoCollection<BsonDocument> Calibrations { get; }
    public IMongoCollection<BsonDocument> StateCounts { get; }
    public IMongoCollection<BsonDocument> Announcements { get; }
    public IMongoCollection<BsonDocument> RunFiles { get; }
    public IMongoCollection<BsonDocument> SingletonLeases { get; }
    public IMongoCollection<BsonDocument> RunTimes { get; }

    /// <summary>
    /// A client whose writes wait for a majority of the replica set and its journal (for at most
    /// <paramref name="writeTimeout"/>: a lost majority fails a write instead of hanging every request), and whose
    /// reads see only majority-committed data, with the driver's own single retry of reads and writes on.
    /// </summary>
    public static IMongoClient CreateClient(string connectionString, TimeSpan? writeTimeout = null) => new MongoClient(ClientSettings(connectionString, writeTimeout));

    public static MongoClientSettings ClientSettings(string connectionString, TimeSpan? writeTimeout = null)
    {
        var settings = MongoClientSettings.FromConnectionString(connectionString);
        settings.RetryWrites = true;
        settings.RetryReads = true;
        settings.WriteConcern = WriteConcern.WMajority.With(journal: true, wTimeout: writeTimeout ?? DefaultWriteTimeout);
        settings.ReadConcern = ReadConcern.Majority;
        settings.ReadPreference = ReadPreference.Primary;
        settings.ApplicationName ??= "pipeline";
        return settings;
    }

    /// <summary>Connects and prepares the database: for tools and tests that need the stores at once.</summary>
    public static async Task<MongoStoreContext> ConnectAsync(string connectionString, string databaseName, CancellationToken cancellationToken)
    {
        var context = new MongoStoreContext(CreateClient(connectionString), databaseName);
        await context.InitialiseAsync(cancellationToken);
        return context;
    }

    /// <summary>
    /// What every instance of every service does before it consumes anything: refuses a server the stores cannot
    /// run on, creates every collection (a collection created implicitly inside a transaction fails under
    /// concurrency), drops indexes of earlier versions, creates the indexes (a no-op when they exist; the unique
    /// ones are part of correctness) and counts the files per state once for a database made before counts were kept.
    /// </summary>
    public async Task InitialiseAsync(CancellationToken cancellationToken)
    {
        await RequireSupportedServerAsync(cancellationToken);
        var existing = (await (await Database.ListCollectionNamesAsync(cancellationToken: cancellationToken)).ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);
        foreach (var collection in Collections.Where(c => !existing.Contains(c)))
        {
            try
            {
                await Database.CreateCollectionAsync(collection, cancellationToken: cancellationToken);
            }
            catch (MongoCommandException ex) when (ex.CodeName == "NamespaceExists")
            {
                // Another instance created it a moment ago.
            }
        }
        foreach (var (collection, names) in MongoQueries.ObsoleteIndexes)
        {
            var indexes = Database.GetCollection<BsonDocument>(collection).Indexes;
            var present = (await (await indexes.ListAsync(cancellationToken)).ToListAsync(cancellationToken)).Select(i => i["name"].AsString).ToHashSet(StringComparer.Ordinal);
            foreach (var name in names.Where(present.Contains))
            {
                try
                {
                    await indexes.DropOneAsync(name, cancellationToken);
                }
                catch (MongoCommandException ex) when (ex.CodeName == "IndexNotFound")
                {
                }
            }
        }
        foreach (var (collection, indexes) in MongoQueries.Indexes)
        {
            await Transient.ExecuteAsync(async token =>
                await Database.GetCollection<BsonDocument>(collection).Indexes.CreateManyAsync(indexes, token), cancellationToken);
        }
        await CountStatesOnceAsync(cancellationToken);
    }

    /// <summary>Refuses, with what to do, a standalone server (no transactions) or one older than <see cref="OldestServer"/>.</summary>
    public async Task RequireSupportedServerAsync(CancellationToken cancellationToken)
    {
        var hello = await Database.RunCommandAsync((Command<BsonDocument>)"{ hello: 1 }", cancellationToken: cancellationToken);
        var build = await Database.RunCommandAsync((Command<BsonDocument>)"{ buildInfo: 1 }", cancellationToken: cancellationToken);
        if (SupportProblem(hello, build) is { } problem)
        {
            throw new InvalidOperationException(problem);
        }
    }

    /// <summary>What is wrong with a server for the stores, from its hello and buildInfo answers; null when nothing.</summary>
    public static string? SupportProblem(BsonDocument hello, BsonDocument buildInfo)
    {
        var version = System.Version.TryParse(buildInfo.GetValue("version", "0.0").AsString.Split('-')[0], out var parsed) ? parsed : new Version(0, 0);
        if (version < OldestServer)
        {
            return $"MongoDB {version} is older than {OldestServer}, the oldest the state store runs on: upgrade the server.";
        }
        var replicaSet = hello.Contains("setName");
        var router = hello.GetValue("msg", "").AsString == "isdbgrid";
        return replicaSet || router
            ? null
            : "The MongoDB server is standalone: the state store needs a replica set (one node will do) for transactions. "
              + "Start mongod with --replSet NAME, run rs.initiate() once, and add replicaSet=NAME to Pipeline:Mongo:ConnectionString.";
    }

    /// <summary>
    /// Counts the files per state once, from the sagas themselves, in a database made before counts were kept (or
    /// a new one, where there is nothing to count); a marker keeps it from running twice. Upgrade with the
    /// orchestrators stopped: a saga changed by an older orchestrator meanwhile would not be counted.
    /// </summary>
    private async Task CountStatesOnceAsync(CancellationToken cancellationToken)
    {
        var migrations = Database.GetCollection<BsonDocument>(MigrationsCollection);
        var marker = new BsonDocument(MongoMapping.Fields.Id, StateCountsCollection);
        if (await migrations.Find(marker).AnyAsync(cancellationToken))
        {
            return;
        }
        try
        {
            await InTransactionAsync(async (session, token) =>
            {
                using var cursor = await Sagas.AggregateAsync<BsonDocument>(session, MongoQueries.CountByState, cancellationToken: token);
                foreach (var group in await cursor.ToListAsync(token))
                {
                    var key = group[MongoMapping.Fields.Id];
                    await StateCounts.BulkWriteAsync(session, [MongoQueries.StateCountChange(key[MongoMapping.Fields.Campaign].AsString, key[MongoMapping.Fields.State].AsString, Guid.Empty, group["files"].ToInt64())], cancellationToken: token);
                }
                await migrations.InsertOneAsync(session, marker, cancellationToken: token);
                return true;
            }, cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Another instance counted them first.
        }
    }

    /// <summary>
    /// Runs <paramref name="work"/> in a transaction; the driver runs it again after a transient error or a write
    /// conflict, so it must only read and write through the session it is given.
    /// </summary>
    public async Task<T> InTransactionAsync<T>(Func<IClientSessionHandle, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
    {
        using var session = await Client.StartSessionAsync(cancellationToken: cancellationToken);
        return await session.WithTransactionAsync(work, cancellationToken: cancellationToken);
    }

    /// <summary>The server's clock: what leases are judged by, so a host whose clock runs ahead takes no live lease.</summary>
    public async Task<DateTimeOffset> ServerTimeAsync(CancellationToken cancellationToken)
    {
        var hello = await Database.RunCommandAsync((Command<BsonDocument>)"{ hello: 1 }", cancellationToken: cancellationToken);
        return ToTime(hello["localTime"]);
    }

    /// <summary>Drops the database: for tests that made one of their own.</summary>
    public Task DropAsync(CancellationToken cancellationToken) => Client.DropDatabaseAsync(Database.DatabaseNamespace.DatabaseName, cancellationToken);

    /// <summary>Answers when the server does: for the readiness check.</summary>
    public Task PingAsync(CancellationToken cancellationToken) => Database.RunCommandAsync((Command<BsonDocument>)"{ ping: 1 }", cancellationToken: cancellationToken);

    public static ValueTask<T> Retry<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken) =>
        Transient.ExecuteAsync(async token => await work(token), cancellationToken);

    public static async Task<List<BsonDocument>> AggregateAsync<T>(IMongoCollection<T> collection, BsonDocument[] stages, CancellationToken cancellationToken) =>
        await Retry(async token =>
        {
            using var cursor = await collection.AggregateAsync<BsonDocument>(stages, cancellationToken: token);
            return await cursor.ToListAsync(token);
        }, cancellationToken);

    public static DateTimeOffset ToTime(BsonValue value) => new(value.ToUniversalTime(), TimeSpan.Zero);

    public static bool IsDuplicateKey(MongoException exception) => exception switch
    {
        MongoWriteException write => write.WriteError?.Code == DuplicateKey,
        MongoBulkWriteException bulk => bulk.WriteErrors.Any(e => e.Code == DuplicateKey),
        MongoCommandException command => command.Code == DuplicateKey,
        _ => false,
    };
}
