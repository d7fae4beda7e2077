using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>The archiver's queue in MongoDB: one document per merged file, its name the id.</summary>
public sealed class MongoArchiveQueue(MongoStoreContext db) : IArchiveQueue, IMongoStore
{
    public const string QueueCollection = "archive_queue";

    private const string SequenceField = "sequence";
    private const string StateField = "state";

    public static void MapRecords() =>
        BsonClassMap.TryRegisterClassMap<QueuedMergedFile>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.Name);
        });

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(QueueCollection,
        [
            MongoCollection.Index("dataset_sequence", Fields.Campaign, Fields.Dataset, SequenceField),
            MongoCollection.Index("dataset_state_sequence", Fields.Campaign, Fields.Dataset, StateField, SequenceField),
        ]),
    ];

    private readonly IMongoCollection<QueuedMergedFile> _queue = db.Collection<QueuedMergedFile>(QueueCollection);

    public async Task<QueuedMergedFile> EnqueueAsync(QueuedMergedFile file, CancellationToken cancellationToken)
    {
        // Insert if absent, and return whatever is stored: the first record of a file, and its state, win.
        var fields = file.ToBsonDocument();
        fields.Remove(Fields.Id);
        return await Retry(token => _queue.FindOneAndUpdateAsync(Builders<QueuedMergedFile>.Filter.Eq(f => f.Name, file.Name),
            new BsonDocumentUpdateDefinition<QueuedMergedFile>(new BsonDocument("$setOnInsert", fields)),
            new FindOneAndUpdateOptions<QueuedMergedFile> { IsUpsert = true, ReturnDocument = ReturnDocument.After }, token), cancellationToken);
    }

    public async Task<QueuedMergedFile?> GetAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => _queue.Find(f => f.Name == name).FirstOrDefaultAsync(token), cancellationToken);

    public async Task<IReadOnlyList<QueuedMergedFile>> ListFromAsync(string campaign, string dataset, long fromSequence, int limit, CancellationToken cancellationToken) =>
        await Retry(token => _queue.Find(From(campaign, dataset, fromSequence)).SortBy(f => f.Sequence).Limit(limit).ToListAsync(token), cancellationToken);

    public async Task<long> LastWrittenAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        await Retry(token => _queue.Find(Written(campaign, dataset)).SortByDescending(f => f.Sequence).Limit(1).Project(f => f.Sequence).FirstOrDefaultAsync(token), cancellationToken);

    public async Task MarkAsync(string name, ArchivingState state, CancellationToken cancellationToken) =>
        await Retry(token => _queue.UpdateOneAsync(f => f.Name == name && f.State < state, Builders<QueuedMergedFile>.Update.Set(f => f.State, state),
            cancellationToken: token), cancellationToken);

    public static FilterDefinition<QueuedMergedFile> From(string campaign, string dataset, long fromSequence) =>
        Builders<QueuedMergedFile>.Filter.Eq(f => f.Campaign, campaign) & Builders<QueuedMergedFile>.Filter.Eq(f => f.Dataset, dataset)
        & Builders<QueuedMergedFile>.Filter.Gte(f => f.Sequence, fromSequence);

    /// <summary>A dataset's files written or archived: equalities on the dataset, a range on the state, the order on the sequence.</summary>
    public static FilterDefinition<QueuedMergedFile> Written(string campaign, string dataset) =>
        Builders<QueuedMergedFile>.Filter.Eq(f => f.Campaign, campaign) & Builders<QueuedMergedFile>.Filter.Eq(f => f.Dataset, dataset)
        & Builders<QueuedMergedFile>.Filter.Gte(f => f.State, ArchivingState.Written);
}
