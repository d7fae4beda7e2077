using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>The merger's durable buffer in MongoDB: committing a merge with the outputs it consumed is one transaction.</summary>
public sealed class MongoMergeStore(MongoStoreContext db) : IMergeStore, IMongoStore
{
    public const string OutputsCollection = "merge_outputs";
    public const string MergedCollection = "merged_files";
    public const string SequencesCollection = "merge_sequences";

    /// <summary>The concern's records with their natural ids (see <see cref="IMongoStore.MapRecords"/>).</summary>
    public static void MapRecords()
    {
        BsonClassMap.TryRegisterClassMap<PendingOutput>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.OutputId);
        });
        BsonClassMap.TryRegisterClassMap<MergedFileRecord>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.Name);
        });
    }

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(OutputsCollection,
        [
            // Ends in _id, the output's id, which the pending order ends in: a page never sorts in memory.
            MongoCollection.Index("pending_ordered", Fields.Campaign, Fields.Dataset, Fields.MergedName, Fields.Run, Fields.Section, Fields.Stream, Fields.Id),
            MongoCollection.Index("merged", Fields.MergedName),
        ], ObsoleteIndexes: ["pending"]),
        new(MergedCollection,
        [
            MongoCollection.Index("archived_updated", Fields.Archived, Fields.UpdatedAt),
            // A dataset's file by its number, when the archiver asks for one again.
            MongoCollection.Index("dataset_sequence", Fields.Campaign, Fields.Dataset, "sequence"),
        ], ObsoleteIndexes: ["dataset_archived_created", "dataset_unarchived_order"]),
        // Each dataset's counter of merged files.
        new(SequencesCollection),
    ];

    private readonly IMongoCollection<PendingOutput> _outputs = db.Collection<PendingOutput>(OutputsCollection);
    private readonly IMongoCollection<MergedFileRecord> _merged = db.Collection<MergedFileRecord>(MergedCollection);
    private readonly IMongoCollection<BsonDocument> _sequences = db.Collection<BsonDocument>(SequencesCollection);

    public async Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken)
    {
        // Insert if absent, and return whatever is stored: the first record of an output wins.
        var stored = await Retry(token => _outputs.FindOneAndUpdateAsync(
            Builders<PendingOutput>.Filter.Eq(o => o.OutputId, output.OutputId),
            InsertOnly(output with { MergedName = null }),
            new FindOneAndUpdateOptions<PendingOutput> { IsUpsert = true, ReturnDocument = ReturnDocument.After },
            token), cancellationToken);
        return stored;
    }

    public async Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_outputs, Buffers, cancellationToken);
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
        await Retry(token => _outputs.Find(Pending(campaign, dataset))
            .Sort(PendingOrder)
            .Limit(limit)
            .ToListAsync(token), cancellationToken);

    public async Task<MergedFileRecord?> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        return await session.WithTransactionAsync<MergedFileRecord?>(async (s, token) =>
        {
            var marked = await _outputs.UpdateManyAsync(s,
                Builders<PendingOutput>.Filter.In(o => o.OutputId, outputIds) & Builders<PendingOutput>.Filter.Eq(o => o.MergedName, null),
                Builders<PendingOutput>.Update.Set(o => o.MergedName, merged.Name),
                cancellationToken: token);
            if (marked.ModifiedCount != outputIds.Count)
            {
                // Someone merged one of them meanwhile: undo this transaction's marks and change nothing.
                await s.AbortTransactionAsync(token);
                return null;
            }
            // The dataset's counter numbers its files: two commits of one dataset conflict on it, and the transaction that
            // loses runs again with the next number.
            var counter = await _sequences.FindOneAndUpdateAsync(s, new BsonDocument(Fields.Id, $"{merged.Campaign}/{merged.Dataset}"),
                new BsonDocument("$inc", new BsonDocument("last", 1L)),
                new FindOneAndUpdateOptions<BsonDocument> { IsUpsert = true, ReturnDocument = ReturnDocument.After }, token);
            var stored = merged with { Archived = false, UpdatedAt = merged.CreatedAt, Sequence = counter["last"].ToInt64() };
            await _merged.InsertOneAsync(s, stored, cancellationToken: token);
            return stored;
        }, cancellationToken: cancellationToken);
    }

    public async Task<MergedFileRecord?> GetMergedFileAsync(string campaign, string dataset, long sequence, CancellationToken cancellationToken) =>
        await Retry(token => _merged.Find(BySequence(campaign, dataset, sequence)).FirstOrDefaultAsync(token), cancellationToken);

    public static FilterDefinition<MergedFileRecord> BySequence(string campaign, string dataset, long sequence) =>
        Builders<MergedFileRecord>.Filter.Eq(m => m.Campaign, campaign) & Builders<MergedFileRecord>.Filter.Eq(m => m.Dataset, dataset)
        & Builders<MergedFileRecord>.Filter.Eq(m => m.Sequence, sequence);

    public async Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => _merged.Find(m => m.Name == name).FirstOrDefaultAsync(token), cancellationToken);

    public async Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken) =>
        await Retry(token => _outputs.Find(o => o.MergedName == mergedName).Sort(PendingOrder).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken) =>
        await Retry(token => _merged.Find(Unarchived & Builders<MergedFileRecord>.Filter.Lt(m => m.UpdatedAt, updatedBefore)).SortBy(m => m.CreatedAt).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyDictionary<string, int>> CountUnarchivedAsync(CancellationToken cancellationToken) =>
        (await Retry(token => _merged.Aggregate().Match(Unarchived).Group(m => m.Campaign, g => new { Campaign = g.Key, Count = g.Count() }).ToListAsync(token), cancellationToken))
            .ToDictionary(c => c.Campaign, c => c.Count, StringComparer.Ordinal);

    public async Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken) =>
        await Retry(token => _merged.UpdateOneAsync(m => m.Name == mergedName && !m.Archived,
            Builders<MergedFileRecord>.Update.Set(m => m.Archived, true).Set(m => m.UpdatedAt, DateTimeOffset.UtcNow),
            cancellationToken: token), cancellationToken);

    public async Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_outputs, ReceivedOutputs(campaign, dataset, fromRun, toRun), cancellationToken);
        return groups.ToDictionary(g => g[Fields.Id].AsInt32, g => g["outputs"].ToInt32());
    }

    public async Task<int?> HighestMergedRunAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        await Retry(token => _outputs.Find(MergedOf(campaign, dataset))
            .SortByDescending(o => o.Run).Limit(1).Project(o => (int?)o.Run).FirstOrDefaultAsync(token), cancellationToken);

    public static FilterDefinition<PendingOutput> Pending(string campaign, string dataset) =>
        Builders<PendingOutput>.Filter.And(
            Builders<PendingOutput>.Filter.Eq(o => o.Campaign, campaign),
            Builders<PendingOutput>.Filter.Eq(o => o.Dataset, dataset),
            Builders<PendingOutput>.Filter.Eq(o => o.MergedName, null));

    public static SortDefinition<PendingOutput> PendingOrder { get; } = Builders<PendingOutput>.Sort
        .Ascending(o => o.Run).Ascending(o => o.Section).Ascending(o => o.Stream).Ascending(o => o.OutputId);

    /// <summary>Outputs waiting per dataset: count, bytes, oldest and newest arrival.</summary>
    public static BsonDocument[] Buffers { get; } =
    [
        new("$match", new BsonDocument(Fields.MergedName, BsonNull.Value)),
        new("$group", new BsonDocument
        {
            { Fields.Id, new BsonDocument { { Fields.Campaign, "$" + Fields.Campaign }, { Fields.Dataset, "$" + Fields.Dataset } } },
            { "outputs", new BsonDocument("$sum", 1) },
            { "bytes", new BsonDocument("$sum", "$" + Fields.Size) },
            { "oldest", new BsonDocument("$min", "$" + Fields.AddedAt) },
            { "newest", new BsonDocument("$max", "$" + Fields.AddedAt) },
        }),
    ];

    /// <summary>An upsert that writes the whole output only if it is new, so the first record of an output wins.</summary>
    public static UpdateDefinition<PendingOutput> InsertOnly(PendingOutput output)
    {
        var fields = output.ToBsonDocument();
        fields.Remove(Fields.Id);
        return new BsonDocumentUpdateDefinition<PendingOutput>(new BsonDocument("$setOnInsert", fields));
    }

    /// <summary>A dataset's outputs already merged (the highest run among them tells how far the dataset is complete).</summary>
    public static FilterDefinition<PendingOutput> MergedOf(string campaign, string dataset) =>
        Builders<PendingOutput>.Filter.Eq(o => o.Campaign, campaign) & Builders<PendingOutput>.Filter.Eq(o => o.Dataset, dataset)
        & Builders<PendingOutput>.Filter.Ne(o => o.MergedName, null);

    /// <summary>Outputs of a dataset the merger received (merged or waiting), per run.</summary>
    public static BsonDocument[] ReceivedOutputs(string campaign, string dataset, int fromRun, int toRun) =>
    [
        new("$match", new BsonDocument { { Fields.Campaign, campaign }, { Fields.Dataset, dataset }, { Fields.Run, RunRange(fromRun, toRun) } }),
        new("$group", new BsonDocument { { Fields.Id, "$" + Fields.Run }, { "outputs", new BsonDocument("$sum", 1) } }),
    ];

    /// <summary>Merged files not yet archived: an equality on false (a negation would scan two index ranges).</summary>
    public static FilterDefinition<MergedFileRecord> Unarchived { get; } = Builders<MergedFileRecord>.Filter.Eq(m => m.Archived, false);
}
