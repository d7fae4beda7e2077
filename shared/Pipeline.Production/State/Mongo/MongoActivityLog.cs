using MongoDB.Bson;
using MongoDB.Driver;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>
/// Files and bytes each stage finished for each campaign per minute and per hour, in MongoDB: a bucket expires through
/// a TTL index when it falls out of its resolution's window (the server removes it within a minute or so after; reads
/// never ask for buckets that old).
/// </summary>
public sealed class MongoActivityLog(MongoStoreContext db) : IActivityLog
{
    public async Task RecordAsync(string stage, string campaign, DateTimeOffset at, long bytes, CancellationToken cancellationToken)
    {
        foreach (var resolution in new[] { ThroughputResolution.Minute, ThroughputResolution.Hour })
        {
            var bucket = ThroughputWindow.BucketOf(resolution, at);
            await db.Activity.UpdateOneAsync(MongoQueries.ThroughputBucket(resolution, stage, campaign, bucket),
                MongoQueries.AddThroughput(resolution, stage, campaign, bucket, bytes), new UpdateOptions { IsUpsert = true }, cancellationToken);
        }
    }

    public async Task<IReadOnlyList<StageActivity>> ListActivityAsync(ThroughputResolution resolution, DateTimeOffset since, CancellationToken cancellationToken)
    {
        var buckets = await Retry(token => db.Activity.Find(MongoQueries.ThroughputSince(resolution, ThroughputWindow.BucketOf(resolution, since)))
            .Sort(Builders<BsonDocument>.Sort.Ascending("bucket").Ascending("stage").Ascending("campaign"))
            .ToListAsync(token), cancellationToken);
        return [.. buckets.Select(b => new StageActivity(b["stage"].AsString, b["campaign"].AsString, ToTime(b["bucket"]), b["files"].ToInt64(), b["bytes"].ToInt64()))];
    }
}
