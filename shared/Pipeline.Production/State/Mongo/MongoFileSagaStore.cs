using MongoDB.Bson;
using MongoDB.Driver;
using static Pipeline.Production.State.Mongo.MongoMapping;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>
/// The file sagas in MongoDB: one document each, replaced by compare-and-set on its version. Files per campaign
/// and state are counted in <c>state_counts</c>, changed in the same transaction as the saga whenever its state
/// changes (as SQLite's triggers do), so the summary and the dispatcher read a few dozen small documents instead
/// of grouping every saga. Each (campaign, state) count is spread over <see cref="MongoQueries.StateCountShards"/>
/// documents, so that concurrent changes rarely conflict on one.
/// </summary>
public sealed class MongoFileSagaStore(MongoStoreContext db) : IFileSagaStore
{
    public async Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken) =>
        await Retry(token => db.Sagas.Find(s => s.CorrelationId == id).FirstOrDefaultAsync(token), cancellationToken);

    public async Task InsertAsync(FileState state, CancellationToken cancellationToken)
    {
        try
        {
            // An insert repeated after a lost acknowledgement finds its own document: a duplicate key either way,
            // and the saga repository re-reads, as for any other concurrent first event.
            await db.InTransactionAsync(async (session, token) =>
            {
                await db.Sagas.InsertOneAsync(session, state, cancellationToken: token);
                await CountAsync(session, [MongoQueries.StateCountChange(state.Campaign, state.CurrentState, state.CorrelationId, +1)], token);
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
                    await db.Sagas.InsertManyAsync(session, chunk, new InsertManyOptions { IsOrdered = true }, token);
                    await CountAsync(session, MongoQueries.StateCountChanges(chunk), token);
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
                var before = await db.Sagas.FindOneAndReplaceAsync(session, MongoQueries.SagaVersion(state.CorrelationId, expectedVersion), state,
                    new FindOneAndReplaceOptions<FileState, BsonDocument> { ReturnDocument = ReturnDocument.Before, Projection = MongoQueries.StateProjection },
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
                        MongoQueries.StateCountChange(state.Campaign, was, state.CorrelationId, -1),
                        MongoQueries.StateCountChange(state.Campaign, state.CurrentState, state.CorrelationId, +1),
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
        changes.Count == 0 ? Task.CompletedTask : db.StateCounts.BulkWriteAsync(session, changes, new BulkWriteOptions { IsOrdered = false }, cancellationToken);

    public async Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken)
    {
        var limit = Math.Clamp(query.Limit, 1, 1000);
        var found = await Retry(token => db.Sagas.Find(MongoQueries.Files(query))
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
        var shards = await Retry(token => db.StateCounts.Find(FilterDefinition<BsonDocument>.Empty).ToListAsync(token), cancellationToken);
        return MongoQueries.SumStateCounts(shards);
    }

    public async Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(db.Sagas, MongoQueries.Failures(campaign), cancellationToken);
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
        var found = await Retry(token => db.Sagas.Find(MongoQueries.Stalled(now, updatedBefore))
            .Sort(MongoQueries.StalledOrder)
            .Limit(limit)
            .Project(MongoQueries.StalledProjection)
            .ToListAsync(token), cancellationToken);
        return found.Select(d => new StalledFile(
            d[Fields.Id].AsGuid, d[Fields.Version].AsInt32, d[Fields.State].AsString,
            d[Fields.Campaign].AsString, d[Fields.Run].AsInt32, d[Fields.Stream].AsString)).ToList();
    }
}
