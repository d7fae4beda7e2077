using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Contracts;
using Polly;
using Polly.Retry;
using static Pipeline.Infrastructure.State.Mongo.MongoMapping;

namespace Pipeline.Infrastructure.State.Mongo;

/// <summary>
/// The production store: one MongoDB database (a replica set, even a single-node one). Each file saga is
/// one document replaced by compare-and-set on its version, the hot path, with no transaction. The two
/// writes that must change several documents at once — registering a run with its raw files, committing a
/// merge with the outputs it consumed — run in a transaction, so either all of it is stored or none.
/// </summary>
public sealed partial class MongoPipelineStore : IPipelineStore
{
    public const string FileSagas = "file_sagas";
    public const string Runs = "runs";
    public const string Catalog = "catalog";
    public const string MergeOutputs = "merge_outputs";
    public const string MergedFiles = "merged_files";
    public const string Activity = "activity";
    public const string Instances = "instances";
    public const string Alerts = "alerts";
    public const string Paused = "paused";
    public const string AreaFiles = "area_files";
    public const string Areas = "areas";
    public const string Movers = "movers";
    public const string Settings = "settings";
    public const string Campaigns = "campaigns";
    public const string Calibrations = "calibrations";

    private const int DuplicateKey = 11000;

    private readonly IMongoClient _client;
    private readonly IMongoCollection<FileState> _sagas;
    private readonly IMongoCollection<RunDocument> _runs;
    private readonly IMongoCollection<CatalogEntry> _catalog;
    private readonly IMongoCollection<PendingOutput> _outputs;
    private readonly IMongoCollection<MergedFileRecord> _merged;
    private readonly IMongoCollection<BsonDocument> _activity;
    private readonly IMongoCollection<InstanceRecord> _instances;
    private readonly IMongoCollection<BsonDocument> _alerts;
    private readonly IMongoCollection<PausedStage> _paused;
    private readonly IMongoCollection<BsonDocument> _areaFiles;
    private readonly IMongoCollection<BsonDocument> _areas;
    private readonly IMongoCollection<BsonDocument> _movers;
    private readonly IMongoCollection<BsonDocument> _settings;

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

    /// <summary>A store on the given database; call <see cref="EnsureIndexesAsync"/> before the first write.</summary>
    public MongoPipelineStore(IMongoClient client, string databaseName)
    {
        Register();
        _client = client;
        var database = client.GetDatabase(databaseName);
        _sagas = database.GetCollection<FileState>(FileSagas);
        _runs = database.GetCollection<RunDocument>(Runs);
        _catalog = database.GetCollection<CatalogEntry>(Catalog);
        _outputs = database.GetCollection<PendingOutput>(MergeOutputs);
        _merged = database.GetCollection<MergedFileRecord>(MergedFiles);
        _activity = database.GetCollection<BsonDocument>(Activity);
        _instances = database.GetCollection<InstanceRecord>(Instances);
        _alerts = database.GetCollection<BsonDocument>(Alerts);
        _paused = database.GetCollection<PausedStage>(Paused);
        _areaFiles = database.GetCollection<BsonDocument>(AreaFiles);
        _areas = database.GetCollection<BsonDocument>(Areas);
        _movers = database.GetCollection<BsonDocument>(Movers);
        _settings = database.GetCollection<BsonDocument>(Settings);
        _campaigns = database.GetCollection<BsonDocument>(Campaigns);
        _calibrations = database.GetCollection<BsonDocument>(Calibrations);
    }

    /// <summary>
    /// A client whose writes wait for a majority of the replica set and its journal, and whose reads see
    /// only majority-committed data, with the driver's own single retry of reads and writes on.
    /// </summary>
    public static IMongoClient CreateClient(string connectionString)
    {
        var settings = MongoClientSettings.FromConnectionString(connectionString);
        settings.RetryWrites = true;
        settings.RetryReads = true;
        settings.WriteConcern = WriteConcern.WMajority.With(journal: true);
        settings.ReadConcern = ReadConcern.Majority;
        settings.ReadPreference = ReadPreference.Primary;
        settings.ApplicationName ??= "pipeline";
        return new MongoClient(settings);
    }

    /// <summary>Connects and creates the indexes: for tools and tests that need a store at once.</summary>
    public static async Task<MongoPipelineStore> ConnectAsync(string connectionString, string databaseName, CancellationToken cancellationToken)
    {
        var store = new MongoPipelineStore(CreateClient(connectionString), databaseName);
        await store.EnsureIndexesAsync(cancellationToken);
        return store;
    }

    /// <summary>
    /// Creates every collection's indexes. Creating an index that exists is a no-op, so every instance of
    /// every service does it at start-up; the unique ones are part of correctness, not only of speed.
    /// </summary>
    public async Task EnsureIndexesAsync(CancellationToken cancellationToken)
    {
        var database = _sagas.Database;
        foreach (var (collection, indexes) in MongoQueries.Indexes)
        {
            await Transient.ExecuteAsync(async token =>
                await database.GetCollection<BsonDocument>(collection).Indexes.CreateManyAsync(indexes, token), cancellationToken);
        }
    }

    /// <summary>Drops the database: for tests that made one of their own.</summary>
    public Task DropAsync(CancellationToken cancellationToken) =>
        _client.DropDatabaseAsync(_sagas.Database.DatabaseNamespace.DatabaseName, cancellationToken);

    private static ValueTask<T> Retry<T>(Func<CancellationToken, Task<T>> work, CancellationToken cancellationToken) =>
        Transient.ExecuteAsync(async token => await work(token), cancellationToken);

    // ---- file sagas -------------------------------------------------------------------------

    public async Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken) =>
        await Retry(token => _sagas.Find(s => s.CorrelationId == id).FirstOrDefaultAsync(token), cancellationToken);

    public async Task InsertAsync(FileState state, CancellationToken cancellationToken)
    {
        try
        {
            // An insert repeated after a lost acknowledgement finds its own document: a duplicate key either way,
            // and the saga repository re-reads, as for any other concurrent first event.
            await _sagas.InsertOneAsync(state, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            throw new ConcurrencyConflictException($"File saga {state.CorrelationId} already exists.");
        }
    }

    public async Task BulkInsertAsync(IEnumerable<FileState> states, CancellationToken cancellationToken)
    {
        const int batch = 10_000;
        foreach (var chunk in states.Chunk(batch))
        {
            try
            {
                // Ordered: the first duplicate stops the batch, as the embedded store's transaction does.
                await _sagas.InsertManyAsync(chunk, new InsertManyOptions { IsOrdered = true }, cancellationToken);
            }
            catch (MongoBulkWriteException ex) when (ex.WriteErrors.Any(e => e.Category == ServerErrorCategory.DuplicateKey))
            {
                throw new ConcurrencyConflictException($"A file saga of the batch already exists: {ex.WriteErrors[0].Message}");
            }
        }
    }

    public async Task UpdateAsync(FileState state, int expectedVersion, CancellationToken cancellationToken)
    {
        state.Version = expectedVersion + 1;
        ReplaceOneResult result;
        try
        {
            result = await _sagas.ReplaceOneAsync(MongoQueries.SagaVersion(state.CorrelationId, expectedVersion), state, cancellationToken: cancellationToken);
        }
        catch
        {
            state.Version = expectedVersion;
            throw;
        }
        if (result.MatchedCount == 0)
        {
            state.Version = expectedVersion;
            throw new ConcurrencyConflictException($"File saga {state.CorrelationId} changed since version {expectedVersion} was read.");
        }
    }

    public async Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken)
    {
        var limit = Math.Clamp(query.Limit, 1, 1000);
        var found = await Retry(token => _sagas.Find(MongoQueries.Files(query))
            .Sort(MongoQueries.FileOrder)
            .Limit(limit + 1)
            .Project(MongoQueries.SummaryProjection)
            .ToListAsync(token), cancellationToken);
        var files = found.Select(ToSummary).ToList();
        string? next = null;
        if (files.Count > limit)
        {
            files.RemoveAt(files.Count - 1);
            next = FileCursor.Encode(files[^1].Run, files[^1].LogicalName);
        }
        return new FilePage(files, next);
    }

    private static FileSummary ToSummary(BsonDocument d) => new(
        d[Fields.Id].AsGuid,
        d[Fields.Campaign].AsString,
        d[Fields.Run].AsInt32,
        d[Fields.Stream].AsString,
        d[Fields.Name].AsString,
        d[Fields.State].AsString,
        d[Fields.Attempt].AsInt32,
        ToTime(d[Fields.UpdatedAt]),
        d.TryGetValue(Fields.FailureReason, out var reason) && reason.IsString ? reason.AsString : null);

    public async Task<IReadOnlyList<StateCount>> CountByStateAsync(CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_sagas, MongoQueries.CountByState, cancellationToken);
        return groups
            .Select(g => new StateCount(g[Fields.Id][Fields.Campaign].AsString, g[Fields.Id][Fields.State].AsString, g["files"].ToInt64()))
            .OrderBy(c => c.Campaign, StringComparer.Ordinal)
            .ThenBy(c => c.State, StringComparer.Ordinal)
            .ToList();
    }

    public async Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_sagas, MongoQueries.Failures(campaign), cancellationToken);
        return FailureGroups.InTableOrder(groups.Select(g =>
        {
            var key = g[Fields.Id].AsBsonDocument;
            string Text(BsonValue? value) => value is { IsString: true } ? value.AsString : "";
            return new FailureGroup(
                key[Fields.Campaign].AsString,
                Text(key.GetValue("stage", BsonNull.Value)) is { Length: > 0 } stage ? stage : FailureGroup.Unclassified,
                Text(key.GetValue("signature", BsonNull.Value)) is { Length: > 0 } signature ? signature : FailureGroup.Unclassified,
                key.GetValue("release", BsonNull.Value) is { IsString: true } release ? release.AsString : null,
                g["files"].ToInt64(),
                ToTime(g["last"]),
                Text(g.GetValue("example", BsonNull.Value)));
        }));
    }

    public async Task<IReadOnlyList<StalledFile>> FindStalledAsync(DateTimeOffset now, DateTimeOffset? updatedBefore, int limit, CancellationToken cancellationToken)
    {
        var found = await Retry(token => _sagas.Find(MongoQueries.Stalled(now, updatedBefore))
            .Sort(MongoQueries.StalledOrder)
            .Limit(limit)
            .Project(MongoQueries.StalledProjection)
            .ToListAsync(token), cancellationToken);
        return found.Select(d => new StalledFile(
            d[Fields.Id].AsGuid, d[Fields.Version].AsInt32, d[Fields.State].AsString,
            d[Fields.Campaign].AsString, d[Fields.Run].AsInt32, d[Fields.Stream].AsString)).ToList();
    }

    public async Task<IReadOnlyDictionary<int, RunProgress>> RunProgressAsync(string campaign, IReadOnlyCollection<int> runs, CancellationToken cancellationToken)
    {
        var progress = runs.Distinct().ToDictionary(run => run, _ => new RunProgress(0, 0));
        if (progress.Count == 0)
        {
            return progress;
        }
        var groups = await AggregateAsync(_sagas, MongoQueries.RunProgress(campaign, progress.Keys), cancellationToken);
        foreach (var group in groups)
        {
            progress[group[Fields.Id].AsInt32] = new RunProgress(group["files"].ToInt32(), group["past"].ToInt32());
        }
        return progress;
    }

    private static async Task<List<BsonDocument>> AggregateAsync<T>(IMongoCollection<T> collection, BsonDocument[] stages, CancellationToken cancellationToken) =>
        await Retry(async token =>
        {
            using var cursor = await collection.AggregateAsync<BsonDocument>(stages, cancellationToken: token);
            return await cursor.ToListAsync(token);
        }, cancellationToken);

    public async Task<int?> OldestUnfinishedRunAsync(string campaign, CancellationToken cancellationToken)
    {
        // One index lookup per in-flight state on (campaign, state, run): no scan of the finished files.
        int? oldest = null;
        foreach (var state in FileStates.BeforeReconstructed)
        {
            var first = await Retry(token => _sagas.Find(s => s.Campaign == campaign && s.CurrentState == state)
                .SortBy(s => s.Run).Limit(1).Project(s => (int?)s.Run).FirstOrDefaultAsync(token), cancellationToken);
            if (first is not null && (oldest is null || first < oldest))
            {
                oldest = first;
            }
        }
        return oldest;
    }

    public async Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, IReadOnlyCollection<int> runs, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_sagas, MongoQueries.ReportedOutputs(campaign, dataset, runs), cancellationToken);
        return groups.ToDictionary(g => g[Fields.Id].AsInt32, g => g["outputs"].ToInt32());
    }

    // ---- runs -------------------------------------------------------------------------------

    public async Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken)
    {
        using var session = await _client.StartSessionAsync(cancellationToken: cancellationToken);
        try
        {
            // The body only reads, then inserts: WithTransactionAsync runs it again after a transient error or a
            // write conflict with a concurrent registration, and the second time it finds what the other stored.
            return await session.WithTransactionAsync(async (s, token) =>
            {
                var known = await _runs.Find(s, r => r.Run == run).FirstOrDefaultAsync(token);
                if (known is not null)
                {
                    return known.Digest == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
                }
                // A write error such as a duplicate key aborts a MongoDB transaction, so catalogued files are
                // looked up first instead of tried: the same entry again is kept, another one refuses the run.
                var names = rawFiles.Select(f => f.Name).Distinct(StringComparer.Ordinal).ToList();
                var stored = await _catalog.Find(s, Builders<CatalogEntry>.Filter.In(c => c.Name, names)).ToListAsync(token);
                var fresh = new List<CatalogEntry>();
                foreach (var entry in rawFiles)
                {
                    var existing = stored.FirstOrDefault(c => c.Name == entry.Name && c.Area == entry.Area);
                    if (existing is null)
                    {
                        fresh.Add(entry);
                    }
                    else if (!SameFile(existing, entry))
                    {
                        await s.AbortTransactionAsync(token);
                        return RunRegistration.Conflicting;
                    }
                }
                if (fresh.Count > 0)
                {
                    await _catalog.InsertManyAsync(s, fresh, cancellationToken: token);
                }
                await _runs.InsertOneAsync(s, new RunDocument(run, digest, rawFiles.Count, DateTimeOffset.UtcNow,
                    announcement is null ? null : System.Text.Json.JsonSerializer.Serialize(announcement, AnnouncementJson)), cancellationToken: token);
                return RunRegistration.New;
            }, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // A concurrent registration committed between this one's reads and its writes: answer from what it stored.
            var other = await _runs.Find(r => r.Run == run).FirstOrDefaultAsync(cancellationToken);
            return other?.Digest == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
        }
    }

    private static DateTimeOffset ToTime(BsonValue value) => new(value.ToUniversalTime(), TimeSpan.Zero);

    private static bool IsDuplicateKey(MongoException exception) => exception switch
    {
        MongoWriteException write => write.WriteError?.Code == DuplicateKey,
        MongoBulkWriteException bulk => bulk.WriteErrors.Any(e => e.Code == DuplicateKey),
        MongoCommandException command => command.Code == DuplicateKey,
        _ => false,
    };

    /// <summary>The same catalogued file: size, checksum and kind agree.</summary>
    private static bool SameFile(CatalogEntry stored, CatalogEntry entry) =>
        stored.Size == entry.Size && stored.Adler32 == entry.Adler32 && stored.Kind == entry.Kind;

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken)
    {
        var runs = await Retry(token => _runs.Find(FilterDefinition<RunDocument>.Empty).SortBy(r => r.Run).ToListAsync(token), cancellationToken);
        return runs.Select(r => new RunRecord(r.Run, r.Files, r.RegisteredAt)).ToList();
    }

    // ---- catalog ----------------------------------------------------------------------------

    public async Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            await _catalog.InsertOneAsync(entry, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // The unique (name, area) index keeps one entry per copy: the same entry again is a no-op.
            var stored = await _catalog.Find(c => c.Name == entry.Name && c.Area == entry.Area).FirstOrDefaultAsync(cancellationToken);
            if (stored is null || !SameFile(stored, entry))
            {
                throw new ConcurrencyConflictException($"Catalog already holds a different '{entry.Name}' in area '{entry.Area}'.");
            }
        }
    }

    public async Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => _catalog.Find(c => c.Name == name).SortBy(c => c.Area).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken) =>
        await Retry(token => _catalog.Find(MongoQueries.CatalogOfKind(kind, campaign))
            .SortBy(c => c.Dataset).ThenBy(c => c.Name).ToListAsync(token), cancellationToken);

    public async Task<bool> MarkBadAsync(string name, string area, string? reason, CancellationToken cancellationToken)
    {
        var result = await Retry(token => _catalog.UpdateOneAsync(c => c.Name == name && c.Area == area,
            Builders<CatalogEntry>.Update.Set(c => c.Bad, reason), cancellationToken: token), cancellationToken);
        return result.MatchedCount == 1;
    }

    // ---- merge buffer -----------------------------------------------------------------------

    public async Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken)
    {
        // Insert if absent, and return whatever is stored: the first record of an output wins.
        var stored = await Retry(token => _outputs.FindOneAndUpdateAsync(
            Builders<PendingOutput>.Filter.Eq(o => o.OutputId, output.OutputId),
            MongoQueries.InsertOnly(output with { MergedName = null }),
            new FindOneAndUpdateOptions<PendingOutput> { IsUpsert = true, ReturnDocument = ReturnDocument.After },
            token), cancellationToken);
        return stored;
    }

    public async Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_outputs, MongoQueries.Buffers, cancellationToken);
        return groups
            .Select(g => new DatasetBuffer(
                g[Fields.Id][Fields.Campaign].AsString,
                g[Fields.Id][Fields.Dataset].AsString,
                g["outputs"].ToInt32(),
                g["bytes"].ToInt64(),
                ToTime(g["oldest"]),
                ToTime(g["newest"])))
            .OrderBy(b => b.Campaign, StringComparer.Ordinal)
            .ThenBy(b => b.Dataset, StringComparer.Ordinal)
            .ToList();
    }

    public async Task<IReadOnlyList<PendingOutput>> ListPendingAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        await Retry(token => _outputs.Find(MongoQueries.Pending(campaign, dataset))
            .Sort(MongoQueries.PendingOrder)
            .Limit(limit)
            .ToListAsync(token), cancellationToken);

    public async Task<bool> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken)
    {
        using var session = await _client.StartSessionAsync(cancellationToken: cancellationToken);
        return await session.WithTransactionAsync(async (s, token) =>
        {
            var marked = await _outputs.UpdateManyAsync(s,
                Builders<PendingOutput>.Filter.In(o => o.OutputId, outputIds) & Builders<PendingOutput>.Filter.Eq(o => o.MergedName, null),
                Builders<PendingOutput>.Update.Set(o => o.MergedName, merged.Name),
                cancellationToken: token);
            if (marked.ModifiedCount != outputIds.Count)
            {
                // Someone merged one of them meanwhile: undo this transaction's marks and change nothing.
                await s.AbortTransactionAsync(token);
                return false;
            }
            await _merged.InsertOneAsync(s, merged with { Archived = false, UpdatedAt = merged.CreatedAt }, cancellationToken: token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => _merged.Find(m => m.Name == name).FirstOrDefaultAsync(token), cancellationToken);

    public async Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken) =>
        await Retry(token => _outputs.Find(o => o.MergedName == mergedName).Sort(MongoQueries.PendingOrder).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken) =>
        await Retry(token => _merged.Find(m => !m.Archived && m.UpdatedAt < updatedBefore).SortBy(m => m.CreatedAt).ToListAsync(token), cancellationToken);

    public async Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken) =>
        await Retry(token => _merged.UpdateOneAsync(m => m.Name == mergedName,
            Builders<MergedFileRecord>.Update.Set(m => m.Archived, true).Set(m => m.UpdatedAt, DateTimeOffset.UtcNow),
            cancellationToken: token), cancellationToken);
    public async Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedOfDatasetAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        await Retry(token => _merged.Find(m => m.Campaign == campaign && m.Dataset == dataset && !m.Archived)
            .SortBy(m => m.CreatedAt).ThenBy(m => m.Name).Limit(limit).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, IReadOnlyCollection<int> runs, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_outputs, MongoQueries.ReceivedOutputs(campaign, dataset, runs), cancellationToken);
        return groups.ToDictionary(g => g[Fields.Id].AsInt32, g => g["outputs"].ToInt32());
    }

    // ---- health -----------------------------------------------------------------------------

    public async Task RecordHeartbeatAsync(InstanceRecord heartbeat, CancellationToken cancellationToken)
    {
        try
        {
            // Replace only a record older than this heartbeat; insert if there is none (a late, older heartbeat
            // matches nothing, tries to insert, and meets the existing _id: nothing to do).
            await _instances.ReplaceOneAsync(
                Builders<InstanceRecord>.Filter.Eq(i => i.Instance, heartbeat.Instance) & Builders<InstanceRecord>.Filter.Lt(i => i.LastSeenAt, heartbeat.LastSeenAt),
                heartbeat, new ReplaceOptions { IsUpsert = true }, cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
        }
    }

    public async Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(CancellationToken cancellationToken) =>
        await Retry(token => _instances.Find(FilterDefinition<InstanceRecord>.Empty).SortBy(i => i.Instance).ToListAsync(token), cancellationToken);

    public async Task<bool> RaiseAlertAsync(string key, string kind, string severity, string message, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var refreshed = await _alerts.UpdateOneAsync(MongoQueries.ActiveAlert(key),
            Builders<BsonDocument>.Update.Set("lastSeenAt", at.UtcDateTime).Set("message", message).Set("severity", severity),
            cancellationToken: cancellationToken);
        if (refreshed.MatchedCount > 0)
        {
            return false;
        }
        try
        {
            await _alerts.InsertOneAsync(new BsonDocument
            {
                { "key", key }, { "kind", kind }, { "severity", severity }, { "message", message },
                { "raisedAt", at.UtcDateTime }, { "lastSeenAt", at.UtcDateTime }, { "resolvedAt", BsonNull.Value }, { "active", true },
            }, cancellationToken: cancellationToken);
            return true;
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Another monitor raised it at the same moment: it is raised once.
            return false;
        }
    }

    public async Task<bool> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var resolved = await _alerts.UpdateOneAsync(MongoQueries.ActiveAlert(key),
            Builders<BsonDocument>.Update.Set("active", false).Set("resolvedAt", at.UtcDateTime), cancellationToken: cancellationToken);
        return resolved.ModifiedCount > 0;
    }

    public async Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken)
    {
        var filter = activeOnly ? new BsonDocument("active", true) : new BsonDocument();
        var alerts = await Retry(token => _alerts.Find(filter).Sort(new BsonDocument { { "raisedAt", -1 }, { Fields.Id, -1 } }).Limit(limit).ToListAsync(token), cancellationToken);
        return alerts.Select(a => new AlertRecord(a["key"].AsString, a["kind"].AsString, a["severity"].AsString, a["message"].AsString,
            ToTime(a["raisedAt"]), ToTime(a["lastSeenAt"]), a["resolvedAt"].IsBsonNull ? null : ToTime(a["resolvedAt"]))).ToList();
    }

    // ---- control ----------------------------------------------------------------------------

    public async Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken)
    {
        try
        {
            await _paused.InsertOneAsync(new PausedStage(stage, by, at), cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Paused already: the first pause stands.
        }
    }

    public async Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken) =>
        (await _paused.DeleteOneAsync(p => p.Stage == stage, cancellationToken)).DeletedCount > 0;

    public async Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken) =>
        await Retry(token => _paused.Find(FilterDefinition<PausedStage>.Empty).SortBy(p => p.Stage).ToListAsync(token), cancellationToken);

    // ---- flow control -----------------------------------------------------------------------

    // An area's totals are one document and its files one document each; every change to both runs in a
    // transaction, so concurrent admissions conflict on the totals and one of them is retried with the other's bytes.

    public async Task<bool> TryReserveAsync(string area, string name, long bytes, AreaLimits limits, DateTimeOffset at, CancellationToken cancellationToken)
    {
        using var session = await _client.StartSessionAsync(cancellationToken: cancellationToken);
        return await session.WithTransactionAsync(async (s, token) =>
        {
            var usage = await ReadAreaAsync(s, area, token);
            var held = await HeldBytesAsync(s, area, name, token);
            if (held is null)
            {
                if (AreaLedger.Blocked(usage.Blocked, usage.Bytes, limits))
                {
                    await WriteAreaAsync(s, usage with { Blocked = true }, token);
                    return false;
                }
                usage = usage with { Files = usage.Files + 1, Blocked = false };
            }
            await PutAreaFileAsync(s, area, new AreaFile(name, bytes), at, token);
            var total = usage.Bytes - (held ?? 0) + bytes;
            await WriteAreaAsync(s, usage with
            {
                Bytes = total,
                PeakBytes = Math.Max(usage.PeakBytes, total),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, bytes),
            }, token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task ReplaceReservationAsync(string area, string name, IReadOnlyList<AreaFile> files, DateTimeOffset at, CancellationToken cancellationToken)
    {
        using var session = await _client.StartSessionAsync(cancellationToken: cancellationToken);
        await session.WithTransactionAsync(async (s, token) =>
        {
            var usage = await ReadAreaAsync(s, area, token);
            var removed = await HeldBytesAsync(s, area, name, token);
            var bytes = usage.Bytes - (removed ?? 0);
            var count = usage.Files - (removed is null ? 0 : 1);
            await _areaFiles.DeleteOneAsync(s, AreaFileId(area, name), cancellationToken: token);
            foreach (var file in files)
            {
                var held = await HeldBytesAsync(s, area, file.Name, token);
                bytes += file.Bytes - (held ?? 0);
                count += held is null ? 1 : 0;
                await PutAreaFileAsync(s, area, file, at, token);
            }
            await WriteAreaAsync(s, usage with
            {
                Bytes = bytes,
                Files = count,
                PeakBytes = Math.Max(usage.PeakBytes, bytes),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, files.Count == 0 ? 0 : files.Max(f => f.Bytes)),
            }, token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task ReleaseAsync(string area, string name, CancellationToken cancellationToken)
    {
        using var session = await _client.StartSessionAsync(cancellationToken: cancellationToken);
        await session.WithTransactionAsync(async (s, token) =>
        {
            var held = await HeldBytesAsync(s, area, name, token);
            if (held is null)
            {
                return false;
            }
            await _areaFiles.DeleteOneAsync(s, AreaFileId(area, name), cancellationToken: token);
            var usage = await ReadAreaAsync(s, area, token);
            await WriteAreaAsync(s, usage with { Bytes = usage.Bytes - held.Value, Files = usage.Files - 1 }, token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task<IReadOnlyList<AreaUsage>> ListAreaUsageAsync(CancellationToken cancellationToken)
    {
        var areas = await Retry(token => _areas.Find(FilterDefinition<BsonDocument>.Empty).Sort(new BsonDocument(Fields.Id, 1)).ToListAsync(token), cancellationToken);
        return areas.Select(ToAreaUsage).ToList();
    }

    public async Task<IReadOnlyList<AreaReservation>> ListReservationsAsync(string area, DateTimeOffset before, int limit, CancellationToken cancellationToken)
    {
        var files = await Retry(token => _areaFiles.Find(new BsonDocument { { Fields.Area, area }, { "at", new BsonDocument("$lt", before.UtcDateTime) } })
            .Sort(new BsonDocument("at", 1)).Limit(limit).ToListAsync(token), cancellationToken);
        return files.Select(f => new AreaReservation(area, f[Fields.Name].AsString, f["bytes"].ToInt64(), ToTime(f["at"]))).ToList();
    }

    private static BsonDocument AreaFileId(string area, string name) =>
        new(Fields.Id, new BsonDocument { { Fields.Area, area }, { Fields.Name, name } });

    private async Task<AreaUsage> ReadAreaAsync(IClientSessionHandle session, string area, CancellationToken cancellationToken)
    {
        var document = await _areas.Find(session, new BsonDocument(Fields.Id, area)).FirstOrDefaultAsync(cancellationToken);
        return document is null ? new AreaUsage(area, 0, 0, false, 0, 0) : ToAreaUsage(document);
    }

    private static AreaUsage ToAreaUsage(BsonDocument d) =>
        new(d[Fields.Id].AsString, d["bytes"].ToInt64(), d["files"].ToInt64(), d["blocked"].AsBoolean, d["peakBytes"].ToInt64(), d["largestFileBytes"].ToInt64());

    private Task WriteAreaAsync(IClientSessionHandle session, AreaUsage usage, CancellationToken cancellationToken) =>
        _areas.ReplaceOneAsync(session, new BsonDocument(Fields.Id, usage.Area), new BsonDocument
        {
            { Fields.Id, usage.Area }, { "bytes", usage.Bytes }, { "files", usage.Files }, { "blocked", usage.Blocked },
            { "peakBytes", usage.PeakBytes }, { "largestFileBytes", usage.LargestFileBytes },
        }, new ReplaceOptions { IsUpsert = true }, cancellationToken);

    private async Task<long?> HeldBytesAsync(IClientSessionHandle session, string area, string name, CancellationToken cancellationToken)
    {
        var document = await _areaFiles.Find(session, AreaFileId(area, name)).FirstOrDefaultAsync(cancellationToken);
        return document?["bytes"].ToInt64();
    }

    private Task PutAreaFileAsync(IClientSessionHandle session, string area, AreaFile file, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var id = AreaFileId(area, file.Name);
        return _areaFiles.UpdateOneAsync(session, id, new BsonDocument
        {
            { "$set", new BsonDocument("bytes", file.Bytes) },
            { "$setOnInsert", new BsonDocument { { Fields.Area, area }, { Fields.Name, file.Name }, { "at", at.UtcDateTime } } },
        }, new UpdateOptions { IsUpsert = true }, cancellationToken);
    }

    // The movers are one document, replaced by compare-and-set on its version: the limit and the one writer per
    // dataset are checked against all leases at once, which separate documents could not do without a race.
    private const string MoversId = "movers";

    public async Task<bool> TryAcquireMoverAsync(string dataset, string holder, int limit, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (version, leases) = await ReadMoversAsync(cancellationToken);
            var live = leases.Where(l => l.Expires > now).ToList();
            var current = live.FirstOrDefault(l => l.Dataset == dataset);
            if (current is not null && current.Holder != holder)
            {
                return false;
            }
            if (current is null && live.Count >= limit)
            {
                return false;
            }
            live.RemoveAll(l => l.Dataset == dataset);
            live.Add(new MoverLease(dataset, holder, current?.Since ?? now, now + lease));
            if (await WriteMoversAsync(version, live, cancellationToken))
            {
                return true;
            }
        }
    }

    public async Task ReleaseMoverAsync(string dataset, string holder, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (version, leases) = await ReadMoversAsync(cancellationToken);
            if (!leases.Any(l => l.Dataset == dataset && l.Holder == holder))
            {
                return;
            }
            if (await WriteMoversAsync(version, [.. leases.Where(l => !(l.Dataset == dataset && l.Holder == holder))], cancellationToken))
            {
                return;
            }
        }
    }

    public async Task<IReadOnlyList<MoverLease>> ListMoversAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        [.. (await ReadMoversAsync(cancellationToken)).Leases.Where(l => l.Expires > now).OrderBy(l => l.Dataset, StringComparer.Ordinal)];

    private async Task<(long Version, List<MoverLease> Leases)> ReadMoversAsync(CancellationToken cancellationToken)
    {
        var document = await Retry(token => _movers.Find(new BsonDocument(Fields.Id, MoversId)).FirstOrDefaultAsync(token), cancellationToken);
        if (document is null)
        {
            return (0, []);
        }
        var leases = document["leases"].AsBsonArray.Select(l => l.AsBsonDocument)
            .Select(l => new MoverLease(l[Fields.Dataset].AsString, l["holder"].AsString, ToTime(l["since"]), ToTime(l["expires"])))
            .ToList();
        return (document[Fields.Version].ToInt64(), leases);
    }

    private async Task<bool> WriteMoversAsync(long version, IReadOnlyList<MoverLease> leases, CancellationToken cancellationToken)
    {
        var document = new BsonDocument
        {
            { Fields.Id, MoversId },
            { Fields.Version, version + 1 },
            { "leases", new BsonArray(leases.Select(l => new BsonDocument
                {
                    { Fields.Dataset, l.Dataset }, { "holder", l.Holder }, { "since", l.Since.UtcDateTime }, { "expires", l.Expires.UtcDateTime },
                })) },
        };
        try
        {
            if (version == 0)
            {
                await _movers.InsertOneAsync(document, cancellationToken: cancellationToken);
                return true;
            }
            var replaced = await _movers.ReplaceOneAsync(new BsonDocument { { Fields.Id, MoversId }, { Fields.Version, version } }, document, cancellationToken: cancellationToken);
            return replaced.ModifiedCount == 1;
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Another archiver created the document first: read it and try again.
            return false;
        }
    }

    public async Task SetSettingAsync(FlowSetting setting, CancellationToken cancellationToken) =>
        await _settings.ReplaceOneAsync(new BsonDocument(Fields.Id, setting.Key), new BsonDocument
        {
            { Fields.Id, setting.Key }, { "value", setting.Value }, { "by", setting.By }, { "at", setting.At.UtcDateTime },
        }, new ReplaceOptions { IsUpsert = true }, cancellationToken);

    public async Task<bool> RemoveSettingAsync(string key, CancellationToken cancellationToken) =>
        (await _settings.DeleteOneAsync(new BsonDocument(Fields.Id, key), cancellationToken)).DeletedCount > 0;

    public async Task<IReadOnlyList<FlowSetting>> ListSettingsAsync(CancellationToken cancellationToken)
    {
        var settings = await Retry(token => _settings.Find(FilterDefinition<BsonDocument>.Empty).Sort(new BsonDocument(Fields.Id, 1)).ToListAsync(token), cancellationToken);
        return settings.Select(d => new FlowSetting(d[Fields.Id].AsString, d["value"].AsString, d["by"].AsString, ToTime(d["at"]))).ToList();
    }

    // ---- activity ---------------------------------------------------------------------------

    public async Task RecordAsync(string stage, DateTimeOffset at, long bytes, CancellationToken cancellationToken)
    {
        var hour = StageActivity.HourOf(at);
        await _activity.UpdateOneAsync(MongoQueries.ActivityBucket(stage, hour), MongoQueries.AddActivity(stage, hour, bytes),
            new UpdateOptions { IsUpsert = true }, cancellationToken);
    }

    public async Task<IReadOnlyList<StageActivity>> ListActivityAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        var buckets = await Retry(token => _activity.Find(MongoQueries.ActivitySince(StageActivity.HourOf(since)))
            .Sort(Builders<BsonDocument>.Sort.Ascending("hour").Ascending("stage"))
            .ToListAsync(token), cancellationToken);
        return buckets.Select(b => new StageActivity(b["stage"].AsString, ToTime(b["hour"]), b["files"].ToInt64(), b["bytes"].ToInt64())).ToList();
    }
}

/// <summary>
/// A registered run as stored: the digest of its announced files tells a repeat from a conflicting change; the
/// announcement itself (files, conditions) is kept as JSON, read whole and never queried into.
/// </summary>
public sealed record RunDocument(int Run, string Digest, int Files, DateTimeOffset RegisteredAt, string? Announcement = null);
