using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>
/// The file sagas in MongoDB: one document each, replaced by compare-and-set on its version. Files per campaign
/// and state are counted in <c>state_counts</c>, changed in the same transaction as the saga whenever its state
/// changes (as SQLite's triggers do), so the summary and the dispatcher read a few dozen small documents instead
/// of grouping every saga. Each (campaign, state) count is spread over <see cref="StateCountShards"/>
/// documents, so that concurrent changes rarely conflict on one.
/// </summary>
public sealed class MongoFileSagaStore(MongoStoreContext db) : IFileSagaStore, IMongoStore
{
    public const string SagasCollection = "file_sagas";
    public const string StateCountsCollection = "state_counts";

    /// <summary>The concern's records with their natural ids (see <see cref="IMongoStore.MapRecords"/>).</summary>
    public static void MapRecords()
    {
        BsonClassMap.TryRegisterClassMap<FileState>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.CorrelationId);
            map.MapMember(x => x.CurrentState).SetElementName(Fields.State);
            map.MapMember(x => x.LogicalName).SetElementName(Fields.Name);
        });
    }

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(SagasCollection,
        [
            // Listings page in (run, name) order: one index per filter the API offers, ending in (run, name), so a page never sorts.
            MongoCollection.Index("run_name", Fields.Run, Fields.Name),
            MongoCollection.Index("state_run_name", Fields.State, Fields.Run, Fields.Name),
            MongoCollection.Index("campaign_run_name", Fields.Campaign, Fields.Run, Fields.Name),
            MongoCollection.Index("campaign_state_run_name", Fields.Campaign, Fields.State, Fields.Run, Fields.Name),
            MongoCollection.Index("campaign_stream_run_name", Fields.Campaign, Fields.Stream, Fields.Run, Fields.Name),
            MongoCollection.Index("stream_run_name", Fields.Stream, Fields.Run, Fields.Name),
            MongoCollection.Index("state_stream_run_name", Fields.State, Fields.Stream, Fields.Run, Fields.Name),
            MongoCollection.Index("campaign_state_stream_run_name", Fields.Campaign, Fields.State, Fields.Stream, Fields.Run, Fields.Name),
            // The watchdog's sweep: each branch of its $or on an index of its own.
            MongoCollection.Index("deadline", Fields.Deadline),
            MongoCollection.Index("updated", Fields.UpdatedAt),
        ]),
        new(StateCountsCollection),
    ];

    /// <summary>
    /// Counts the files per state once, from the sagas themselves, in a database made before counts were kept (or
    /// a new one, where there is nothing to count). Upgrade with the orchestrators stopped: a saga changed by an older
    /// orchestrator meanwhile would not be counted.
    /// </summary>
    public static Task PrepareAsync(MongoStoreContext database, CancellationToken cancellationToken) =>
        database.MigrateOnceAsync(StateCountsCollection, async (session, token) =>
        {
            var sagas = database.Collection<FileState>(SagasCollection);
            var counts = database.Collection<BsonDocument>(StateCountsCollection);
            using var cursor = await sagas.AggregateAsync<BsonDocument>(session, CountByState, cancellationToken: token);
            foreach (var group in await cursor.ToListAsync(token))
            {
                var key = group[Fields.Id];
                await counts.BulkWriteAsync(session, [StateCountChange(key[Fields.Campaign].AsString, key[Fields.State].AsString, Guid.Empty, group["files"].ToInt64())], cancellationToken: token);
            }
        }, cancellationToken);

    private readonly IMongoCollection<FileState> _sagas = db.Collection<FileState>(SagasCollection);
    private readonly IMongoCollection<BsonDocument> _stateCounts = db.Collection<BsonDocument>(StateCountsCollection);

    public async Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken) =>
        await Retry(token => _sagas.Find(s => s.CorrelationId == id).FirstOrDefaultAsync(token), cancellationToken);

    public async Task InsertAsync(FileState state, CancellationToken cancellationToken)
    {
        try
        {
            // An insert repeated after a lost acknowledgement finds its own document: a duplicate key either way,
            // and the saga repository re-reads, as for any other concurrent first event.
            await db.InTransactionAsync(async (session, token) =>
            {
                await _sagas.InsertOneAsync(session, state, cancellationToken: token);
                await CountAsync(session, [StateCountChange(state.Campaign, state.CurrentState, state.CorrelationId, +1)], token);
                return true;
            }, cancellationToken);
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
                await db.InTransactionAsync(async (session, token) =>
                {
                    // Ordered: the first duplicate stops the batch, as the embedded store's transaction does.
                    await _sagas.InsertManyAsync(session, chunk, new InsertManyOptions { IsOrdered = true }, token);
                    await CountAsync(session, StateCountChanges(chunk), token);
                    return true;
                }, cancellationToken);
            }
            catch (MongoException ex) when (IsDuplicateKey(ex))
            {
                throw new ConcurrencyConflictException($"A file saga of the batch already exists: {ex.Message}");
            }
        }
    }

    public async Task UpdateAsync(FileState state, int expectedVersion, CancellationToken cancellationToken)
    {
        state.Version = expectedVersion + 1;
        bool replaced;
        try
        {
            replaced = await db.InTransactionAsync(async (session, token) =>
            {
                // The state it had, read in the same step as the compare-and-set: its count moves only if it changed.
                var before = await _sagas.FindOneAndReplaceAsync(session, SagaVersion(state.CorrelationId, expectedVersion), state,
                    new FindOneAndReplaceOptions<FileState, BsonDocument> { ReturnDocument = ReturnDocument.Before, Projection = StateProjection },
                    token);
                if (before is null)
                {
                    return false;
                }
                var was = before[Fields.State].AsString;
                if (was != state.CurrentState)
                {
                    await CountAsync(session,
                    [
                        StateCountChange(state.Campaign, was, state.CorrelationId, -1),
                        StateCountChange(state.Campaign, state.CurrentState, state.CorrelationId, +1),
                    ], token);
                }
                return true;
            }, cancellationToken);
        }
        catch
        {
            state.Version = expectedVersion;
            throw;
        }
        if (!replaced)
        {
            state.Version = expectedVersion;
            throw new ConcurrencyConflictException($"File saga {state.CorrelationId} changed since version {expectedVersion} was read.");
        }
    }

    private Task CountAsync(IClientSessionHandle session, IReadOnlyList<UpdateOneModel<BsonDocument>> changes, CancellationToken cancellationToken) =>
        changes.Count == 0 ? Task.CompletedTask : _stateCounts.BulkWriteAsync(session, changes, new BulkWriteOptions { IsOrdered = false }, cancellationToken);

    public async Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken)
    {
        var limit = Math.Clamp(query.Limit, 1, 1000);
        var found = await Retry(token => _sagas.Find(Files(query))
            .Sort(FileOrder)
            .Limit(limit + 1)
            .Project(SummaryProjection)
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
        var shards = await Retry(token => _stateCounts.Find(FilterDefinition<BsonDocument>.Empty).ToListAsync(token), cancellationToken);
        return SumStateCounts(shards);
    }

    public async Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_sagas, Failures(campaign), cancellationToken);
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
        var found = await Retry(token => _sagas.Find(Stalled(now, updatedBefore))
            .Sort(StalledOrder)
            .Limit(limit)
            .Project(StalledProjection)
            .ToListAsync(token), cancellationToken);
        return found.Select(d => new StalledFile(
            d[Fields.Id].AsGuid, d[Fields.Version].AsInt32, d[Fields.State].AsString,
            d[Fields.Campaign].AsString, d[Fields.Run].AsInt32, d[Fields.Stream].AsString)).ToList();
    }

    private static FilterDefinitionBuilder<FileState> SagaFilter => Builders<FileState>.Filter;

    public static FilterDefinition<FileState> Files(FileQuery query)
    {
        var parts = new List<FilterDefinition<FileState>>();
        if (query.Campaign is not null) parts.Add(SagaFilter.Eq(s => s.Campaign, query.Campaign));
        if (query.State is not null) parts.Add(SagaFilter.Eq(s => s.CurrentState, query.State));
        if (query.Stream is not null) parts.Add(SagaFilter.Eq(s => s.Stream, query.Stream));
        if (query.RunFrom is not null) parts.Add(SagaFilter.Gte(s => s.Run, query.RunFrom.Value));
        if (query.RunTo is not null) parts.Add(SagaFilter.Lte(s => s.Run, query.RunTo.Value));
        if (query.Dataset is not null) parts.Add(SagaFilter.ElemMatch(s => s.Outputs, o => o.Output.Dataset == query.Dataset));
        if (query.FailureSignature is not null) parts.Add(SagaFilter.Eq(s => s.FailureSignature, query.FailureSignature));
        if (query.After is not null)
        {
            var (run, name) = FileCursor.Decode(query.After);
            parts.Add(SagaFilter.Or(
                SagaFilter.Gt(s => s.Run, run),
                SagaFilter.And(SagaFilter.Eq(s => s.Run, run), SagaFilter.Gt(s => s.LogicalName, name))));
        }
        return parts.Count == 0 ? SagaFilter.Empty : SagaFilter.And(parts);
    }

    public static SortDefinition<FileState> FileOrder { get; } =
        Builders<FileState>.Sort.Ascending(s => s.Run).Ascending(s => s.LogicalName);

    /// <summary>What a listing reads of each saga: its summary, never the history.</summary>
    public static ProjectionDefinition<FileState> SummaryProjection { get; } = Builders<FileState>.Projection
        .Include(s => s.Campaign).Include(s => s.Run).Include(s => s.Stream).Include(s => s.LogicalName)
        .Include(s => s.CurrentState).Include(s => s.Attempt).Include(s => s.UpdatedAt).Include(s => s.FailureReason);

    public static ProjectionDefinition<FileState> StalledProjection { get; } = Builders<FileState>.Projection
        .Include(s => s.Version).Include(s => s.CurrentState).Include(s => s.Campaign).Include(s => s.Run).Include(s => s.Stream);

    public static FilterDefinition<FileState> Stalled(DateTimeOffset now, DateTimeOffset? updatedBefore)
    {
        var late = SagaFilter.Lt(s => s.Deadline, now);
        // A batch job outlives the transport's messages: its file waits for adoption or its deadline, not for recovery.
        var inBatch = SagaFilter.And(SagaFilter.Eq(s => s.CurrentState, FileStates.Reconstructing), SagaFilter.Ne(s => s.BatchJob, null));
        var due = updatedBefore is null ? late : SagaFilter.Or(late, SagaFilter.And(SagaFilter.Lt(s => s.UpdatedAt, updatedBefore.Value), SagaFilter.Not(inBatch)));
        return SagaFilter.And(SagaFilter.Nin(s => s.CurrentState, FileStates.Final), due);
    }

    public static SortDefinition<FileState> StalledOrder { get; } = Builders<FileState>.Sort.Ascending(s => s.UpdatedAt);

    /// <summary>The compare-and-set of a saga update: this id, still at the version that was read.</summary>
    public static FilterDefinition<FileState> SagaVersion(Guid id, int version) =>
        SagaFilter.And(SagaFilter.Eq(s => s.CorrelationId, id), SagaFilter.Eq(s => s.Version, version));

    /// <summary>What an update needs to know of the saga it replaced: the state it was in.</summary>
    public static ProjectionDefinition<FileState, BsonDocument> StateProjection { get; } =
        Builders<FileState>.Projection.Include(s => s.CurrentState).Exclude(s => s.CorrelationId);

    /// <summary>Documents each (campaign, state) count is spread over; a file always counts in the same one.</summary>
    public const int StateCountShards = 8;

    /// <summary>The shard a file counts in: from its id's bytes, the same in every process and version.</summary>
    public static int StateCountShard(Guid file) => (int)(BitConverter.ToUInt32(file.ToByteArray(), 0) % StateCountShards);

    /// <summary>Adds <paramref name="delta"/> to the files a campaign has in a state (creating the count at 0 if new).</summary>
    public static UpdateOneModel<BsonDocument> StateCountChange(string campaign, string state, Guid file, long delta) =>
        StateCountChange(campaign, state, StateCountShard(file), delta);

    private static UpdateOneModel<BsonDocument> StateCountChange(string campaign, string state, int shard, long delta) =>
        new(new BsonDocument(Fields.Id, new BsonDocument { { "c", campaign }, { "s", state }, { "n", shard } }),
            new BsonDocument
            {
                { "$inc", new BsonDocument("files", delta) },
                { "$setOnInsert", new BsonDocument { { Fields.Campaign, campaign }, { Fields.State, state } } },
            })
        { IsUpsert = true };

    /// <summary>The count changes of many new sagas: one per (campaign, state, shard) they fall in.</summary>
    public static IReadOnlyList<UpdateOneModel<BsonDocument>> StateCountChanges(IEnumerable<FileState> added) =>
        [.. added.GroupBy(s => (s.Campaign, s.CurrentState, Shard: StateCountShard(s.CorrelationId)))
            .Select(g => StateCountChange(g.Key.Campaign, g.Key.CurrentState, g.Key.Shard, g.Count()))];

    /// <summary>The counts of every (campaign, state) with files, from their shards, in (campaign, state) order.</summary>
    public static IReadOnlyList<StateCount> SumStateCounts(IEnumerable<BsonDocument> shards) =>
        [.. shards
            .GroupBy(d => (Campaign: d[Fields.Campaign].AsString, State: d[Fields.State].AsString))
            .Select(g => new StateCount(g.Key.Campaign, g.Key.State, g.Sum(d => d["files"].ToInt64())))
            .Where(c => c.Files > 0)
            .OrderBy(c => c.Campaign, StringComparer.Ordinal)
            .ThenBy(c => c.State, StringComparer.Ordinal)];

    /// <summary>
    /// Files per campaign and state, grouped over every saga: only for the one-time count of a database made before
    /// counts were kept (see <see cref="PrepareAsync"/>).
    /// </summary>
    public static BsonDocument[] CountByState { get; } =
    [
        new("$group", new BsonDocument
        {
            { Fields.Id, new BsonDocument { { Fields.Campaign, "$" + Fields.Campaign }, { Fields.State, "$" + Fields.State } } },
            { "files", new BsonDocument("$sum", 1) },
        }),
    ];

    /// <summary>Failed files per campaign, stage, signature and release, with the latest failure and one reason.</summary>
    public static BsonDocument[] Failures(string? campaign)
    {
        var match = new BsonDocument(Fields.State, FileStates.Failed);
        if (campaign is not null)
        {
            match.Add(Fields.Campaign, campaign);
        }
        return
        [
            new("$match", match),
            new("$group", new BsonDocument
            {
                {
                    Fields.Id, new BsonDocument
                    {
                        { Fields.Campaign, "$" + Fields.Campaign },
                        { "stage", "$" + Fields.FailureStage },
                        { "signature", "$" + Fields.FailureSignature },
                        { "release", "$" + Fields.FailureRelease },
                    }
                },
                { "files", new BsonDocument("$sum", 1) },
                { "last", new BsonDocument("$max", "$" + Fields.UpdatedAt) },
                { "example", new BsonDocument("$min", "$" + Fields.FailureReason) },
            }),
        ];
    }
}
