using System.Text.Json;
using MongoDB.Bson;
using MongoDB.Driver;
using Polly;
using Polly.Retry;

namespace Pipeline.Production.State;

/// <summary>
/// The MongoDB database every Mongo store shares (a replica set, even a single-node one): the client, the
/// collections by name, and the rules every store follows — majority writes and reads, a retry for transient
/// failures of operations that are safe to repeat, duplicate keys told apart from other errors.
/// </summary>
public sealed class MongoStoreContext
{
    /// <summary>Markers of one-time migrations that ran (so that none runs twice).</summary>
    public const string MigrationsCollection = "migrations";

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
    }

    public IMongoClient Client { get; }
    public IMongoDatabase Database { get; }

    /// <summary>One collection of a concern, its documents read and written as <typeparamref name="T"/>.</summary>
    public IMongoCollection<T> Collection<T>(string name) => Database.GetCollection<T>(name);

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
    /// ones are part of correctness) and lets each concern prepare what it needs (see <see cref="IMongoStore"/>).
    /// </summary>
    public async Task InitialiseAsync(CancellationToken cancellationToken)
    {
        await RequireSupportedServerAsync(cancellationToken);
        var existing = (await (await Database.ListCollectionNamesAsync(cancellationToken: cancellationToken)).ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);
        var schema = StoreConcerns.MongoSchema;
        foreach (var collection in schema.Select(c => c.Name).Append(MigrationsCollection).Where(c => !existing.Contains(c)))
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
        foreach (var (collection, names) in schema.Where(c => c.ObsoleteIndexes is { Count: > 0 }).Select(c => (c.Name, c.ObsoleteIndexes!)))
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
        foreach (var (collection, indexes) in schema.Where(c => c.Indexes.Count > 0).Select(c => (c.Name, c.Indexes)))
        {
            await Transient.ExecuteAsync(async token =>
                await Database.GetCollection<BsonDocument>(collection).Indexes.CreateManyAsync(indexes, token), cancellationToken);
        }
        await StoreConcerns.PrepareMongoAsync(this, cancellationToken);
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
    /// Runs <paramref name="migration"/> once for the database, in a transaction with the marker that says it ran: an
    /// instance that finds the marker, or loses the race to write it, does nothing.
    /// </summary>
    public async Task MigrateOnceAsync(string name, Func<IClientSessionHandle, CancellationToken, Task> migration, CancellationToken cancellationToken)
    {
        var migrations = Database.GetCollection<BsonDocument>(MigrationsCollection);
        var marker = new BsonDocument(MongoMapping.Fields.Id, name);
        if (await migrations.Find(marker).AnyAsync(cancellationToken))
        {
            return;
        }
        try
        {
            await InTransactionAsync(async (session, token) =>
            {
                await migration(session, token);
                await migrations.InsertOneAsync(session, marker, cancellationToken: token);
                return true;
            }, cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Another instance ran it first.
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
