using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>The health watcher's record in MongoDB: instances' last heartbeats and alerts.</summary>
public sealed class MongoHealthStore(MongoStoreContext db) : IHealthStore, IMongoStore
{
    public const string InstancesCollection = "instances";
    public const string AlertsCollection = "alerts";

    /// <summary>The concern's records with their natural ids (see <see cref="IMongoStore.MapRecords"/>).</summary>
    public static void MapRecords()
    {
        BsonClassMap.TryRegisterClassMap<InstanceRecord>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.Instance);
        });
    }

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(InstancesCollection),
        new(AlertsCollection,
        [
            new(MongoCollection.Keys("key"), new CreateIndexOptions<BsonDocument>
            {
                Name = "active_key",
                Unique = true,
                PartialFilterExpression = new BsonDocument("active", true),
            }),
            MongoCollection.Index("raised", "raisedAt"),
        ]),
    ];

    private readonly IMongoCollection<InstanceRecord> _instances = db.Collection<InstanceRecord>(InstancesCollection);
    private readonly IMongoCollection<BsonDocument> _alerts = db.Collection<BsonDocument>(AlertsCollection);

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
        var refreshed = await _alerts.UpdateOneAsync(ActiveAlert(key),
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

    public async Task<AlertRecord?> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var resolved = await _alerts.FindOneAndUpdateAsync(ActiveAlert(key),
            Builders<BsonDocument>.Update.Set("active", false).Set("resolvedAt", at.UtcDateTime),
            new FindOneAndUpdateOptions<BsonDocument> { ReturnDocument = ReturnDocument.After }, cancellationToken);
        return resolved is null ? null : Alert(resolved);
    }

    private static AlertRecord Alert(BsonDocument a) => new(a["key"].AsString, a["kind"].AsString, a["severity"].AsString, a["message"].AsString,
        ToTime(a["raisedAt"]), ToTime(a["lastSeenAt"]), a["resolvedAt"].IsBsonNull ? null : ToTime(a["resolvedAt"]));

    public async Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken)
    {
        var filter = activeOnly ? new BsonDocument("active", true) : new BsonDocument();
        var alerts = await Retry(token => _alerts.Find(filter).Sort(new BsonDocument { { "raisedAt", -1 }, { Fields.Id, -1 } }).Limit(limit).ToListAsync(token), cancellationToken);
        return [.. alerts.Select(Alert)];
    }

    /// <summary>The active alert with this key (a unique partial index keeps it to one).</summary>
    public static FilterDefinition<BsonDocument> ActiveAlert(string key) =>
        new BsonDocument { { "key", key }, { "active", true } };
}
