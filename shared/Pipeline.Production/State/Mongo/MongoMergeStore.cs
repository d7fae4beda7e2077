using MongoDB.Driver;
using static Pipeline.Production.State.Mongo.MongoMapping;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>The merger's durable buffer in MongoDB: committing a merge with the outputs it consumed is one transaction.</summary>
public sealed class MongoMergeStore(MongoStoreContext db) : IMergeStore
{
    public async Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken)
    {
        // Insert if absent, and return whatever is stored: the first record of an output wins.
        var stored = await Retry(token => db.Outputs.FindOneAndUpdateAsync(
            Builders<PendingOutput>.Filter.Eq(o => o.OutputId, output.OutputId),
            MongoQueries.InsertOnly(output with { MergedName = null }),
            new FindOneAndUpdateOptions<PendingOutput> { IsUpsert = true, ReturnDocument = ReturnDocument.After },
            token), cancellationToken);
        return stored;
    }

    public async Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(db.Outputs, MongoQueries.Buffers, cancellationToken);
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
        await Retry(token => db.Outputs.Find(MongoQueries.Pending(campaign, dataset))
            .Sort(MongoQueries.PendingOrder)
            .Limit(limit)
            .ToListAsync(token), cancellationToken);

    public async Task<bool> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        return await session.WithTransactionAsync(async (s, token) =>
        {
            var marked = await db.Outputs.UpdateManyAsync(s,
                Builders<PendingOutput>.Filter.In(o => o.OutputId, outputIds) & Builders<PendingOutput>.Filter.Eq(o => o.MergedName, null),
                Builders<PendingOutput>.Update.Set(o => o.MergedName, merged.Name),
                cancellationToken: token);
            if (marked.ModifiedCount != outputIds.Count)
            {
                // Someone merged one of them meanwhile: undo this transaction's marks and change nothing.
                await s.AbortTransactionAsync(token);
                return false;
            }
            await db.Merged.InsertOneAsync(s, merged with { Archived = false, UpdatedAt = merged.CreatedAt }, cancellationToken: token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => db.Merged.Find(m => m.Name == name).FirstOrDefaultAsync(token), cancellationToken);

    public async Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken) =>
        await Retry(token => db.Outputs.Find(o => o.MergedName == mergedName).Sort(MongoQueries.PendingOrder).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken) =>
        await Retry(token => db.Merged.Find(MongoQueries.Unarchived & Builders<MergedFileRecord>.Filter.Lt(m => m.UpdatedAt, updatedBefore)).SortBy(m => m.CreatedAt).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyDictionary<string, int>> CountUnarchivedAsync(CancellationToken cancellationToken) =>
        (await Retry(token => db.Merged.Aggregate().Match(MongoQueries.Unarchived).Group(m => m.Campaign, g => new { Campaign = g.Key, Count = g.Count() }).ToListAsync(token), cancellationToken))
            .ToDictionary(c => c.Campaign, c => c.Count, StringComparer.Ordinal);

    public async Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken) =>
        await Retry(token => db.Merged.UpdateOneAsync(m => m.Name == mergedName,
            Builders<MergedFileRecord>.Update.Set(m => m.Archived, true).Set(m => m.UpdatedAt, DateTimeOffset.UtcNow),
            cancellationToken: token), cancellationToken);

    public async Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedOfDatasetAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        await Retry(token => db.Merged.Find(MongoQueries.UnarchivedOfDataset(campaign, dataset))
            .Sort(MongoQueries.ArchiveOrder).Limit(limit).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(db.Outputs, MongoQueries.ReceivedOutputs(campaign, dataset, fromRun, toRun), cancellationToken);
        return groups.ToDictionary(g => g[Fields.Id].AsInt32, g => g["outputs"].ToInt32());
    }

    public async Task<int?> HighestMergedRunAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        await Retry(token => db.Outputs.Find(MongoQueries.MergedOf(campaign, dataset))
            .SortByDescending(o => o.Run).Limit(1).Project(o => (int?)o.Run).FirstOrDefaultAsync(token), cancellationToken);
}
