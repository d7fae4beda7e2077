using MongoDB.Bson;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>
/// Files and bytes each stage finished for each campaign per minute and per hour, in MongoDB: a bucket expires through
/// a TTL index when it falls out of its resolution's window (the server removes it within a minute or so after; reads
/// never ask for buckets that old).
/// </summary>
public sealed class MongoActivityLog(MongoStoreContext db) : IActivityLog, IMongoStore
{
    /// <summary>The throughput log (the hourly "activity" collection of earlier versions is no longer read).</summary>
    public const string ThroughputCollection = "throughput";

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(ThroughputCollection,
        [
            MongoCollection.Index("resolution_bucket", "resolution", "bucket"),
            new(MongoCollection.Keys("expireAt"), new CreateIndexOptions { Name = "expire_at", ExpireAfter = TimeSpan.Zero }),
        ]),
    ];

    private readonly IMongoCollection<BsonDocument> _throughput = db.Collection<BsonDocument>(ThroughputCollection);

    public async Task RecordAsync(string stage, string campaign, DateTimeOffset at, long bytes, CancellationToken cancellationToken)
    {
        foreach (var resolution in new[] { ThroughputResolution.Minute, ThroughputResolution.Hour })
        {
            var bucket = ThroughputWindow.BucketOf(resolution, at);
            await _throughput.UpdateOneAsync(ThroughputBucket(resolution, stage, campaign, bucket),
                AddThroughput(resolution, stage, campaign, bucket, bytes), new UpdateOptions { IsUpsert = true }, cancellationToken);
        }
    }

    public async Task<IReadOnlyList<StageActivity>> ListActivityAsync(ThroughputResolution resolution, DateTimeOffset since, CancellationToken cancellationToken)
    {
        var buckets = await Retry(token => _throughput.Find(ThroughputSince(resolution, ThroughputWindow.BucketOf(resolution, since)))
            .Sort(Builders<BsonDocument>.Sort.Ascending("bucket").Ascending("stage").Ascending("campaign"))
            .ToListAsync(token), cancellationToken);
        return [.. buckets.Select(b => new StageActivity(b["stage"].AsString, b["campaign"].AsString, ToTime(b["bucket"]), b["files"].ToInt64(), b["bytes"].ToInt64()))];
    }

    /// <summary>
    /// One stage's bucket of one campaign at one resolution: its id is all four, so concurrent first writes upsert the
    /// same document. It expires (a TTL index) once it falls out of its resolution's window.
    /// </summary>
    public static FilterDefinition<BsonDocument> ThroughputBucket(ThroughputResolution resolution, string stage, string campaign, DateTimeOffset bucket) =>
        new BsonDocument(Fields.Id, $"{(int)resolution}|{stage}|{campaign}|{bucket.ToUnixTimeMilliseconds()}");

    public static UpdateDefinition<BsonDocument> AddThroughput(ThroughputResolution resolution, string stage, string campaign, DateTimeOffset bucket, long bytes) => new BsonDocument
    {
        { "$inc", new BsonDocument { { "files", 1L }, { "bytes", bytes } } },
        {
            "$setOnInsert", new BsonDocument
            {
                { "resolution", (int)resolution }, { "stage", stage }, { "campaign", campaign }, { "bucket", bucket.UtcDateTime },
                { "expireAt", (bucket + ThroughputWindow.Kept(resolution)).UtcDateTime },
            }
        },
    };

    public static FilterDefinition<BsonDocument> ThroughputSince(ThroughputResolution resolution, DateTimeOffset bucket) =>
        new BsonDocument { { "resolution", (int)resolution }, { "bucket", new BsonDocument("$gte", bucket.UtcDateTime) } };
}
