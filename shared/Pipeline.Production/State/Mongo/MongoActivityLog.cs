using MongoDB.Bson;
using MongoDB.Driver;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>Files and bytes each stage finished per hour, in MongoDB.</summary>
public sealed class MongoActivityLog(MongoStoreContext db) : IActivityLog
{
    public async Task RecordAsync(string stage, DateTimeOffset at, long bytes, CancellationToken cancellationToken)
    {
        var hour = StageActivity.HourOf(at);
        await db.Activity.UpdateOneAsync(MongoQueries.ActivityBucket(stage, hour), MongoQueries.AddActivity(stage, hour, bytes),
            new UpdateOptions { IsUpsert = true }, cancellationToken);
    }

    public async Task<IReadOnlyList<StageActivity>> ListActivityAsync(DateTimeOffset since, CancellationToken cancellationToken)
    {
        var buckets = await Retry(token => db.Activity.Find(MongoQueries.ActivitySince(StageActivity.HourOf(since)))
            .Sort(Builders<BsonDocument>.Sort.Ascending("hour").Ascending("stage"))
            .ToListAsync(token), cancellationToken);
        return buckets.Select(b => new StageActivity(b["stage"].AsString, ToTime(b["hour"]), b["files"].ToInt64(), b["bytes"].ToInt64())).ToList();
    }
}

/// <summary>
/// A registered run as stored: the digest of its announced files tells a repeat from a conflicting change; the
/// announcement itself (files, conditions) is kept as JSON, read whole and never queried into.
/// </summary>
/// <param name="Announcement">Only in runs registered before announcements were kept in parts of their own.</param>
/// <param name="AnnouncementParts">How many parts of <c>run_announcements</c> hold the announcement's JSON.</param>
public sealed record RunDocument(int Run, string Digest, int Files, DateTimeOffset RegisteredAt, string? Announcement = null, int AnnouncementParts = 0);

