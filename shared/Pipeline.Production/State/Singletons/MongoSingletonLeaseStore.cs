using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>
/// Singleton leases in MongoDB: one document per singleton, taken or renewed by one conditional update, with expiry
/// measured on the server's clock ($$NOW), so instances on hosts whose clocks differ agree on it.
/// </summary>
public sealed class MongoSingletonLeaseStore(MongoStoreContext db) : ISingletonLeaseStore, IMongoStore
{
    public const string SingletonLeasesCollection = "singleton_leases";

    public static IReadOnlyList<MongoCollection> Schema { get; } = [new(SingletonLeasesCollection)];

    private readonly IMongoCollection<BsonDocument> _leases = db.Collection<BsonDocument>(SingletonLeasesCollection);

    private const string Holder = "holder";
    private const string Token = "token";
    private const string ExpiresAt = "expiresAt";

    public async Task<SingletonLease> AcquireAsync(string name, string holder, TimeSpan duration, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var expired = new BsonDocument("$lte", new BsonArray { "$" + ExpiresAt, "$$NOW" });
        var mine = new BsonDocument("$eq", new BsonArray { "$" + Holder, holder });
        var filter = new BsonDocument
        {
            { "_id", name },
            { "$expr", new BsonDocument("$or", new BsonArray { mine, expired }) },
        };
        // The token moves on unless the holder kept the lease without a gap.
        var kept = new BsonDocument("$and", new BsonArray { mine, new BsonDocument("$not", new BsonArray { expired }) });
        var update = new BsonDocument("$set", new BsonDocument
        {
            { Token, new BsonDocument("$cond", new BsonArray { kept, "$" + Token, new BsonDocument("$add", new BsonArray { new BsonDocument("$ifNull", new BsonArray { "$" + Token, 0 }), 1 }) }) },
            { Holder, holder },
            { ExpiresAt, new BsonDocument("$add", new BsonArray { "$$NOW", (long)duration.TotalMilliseconds }) },
        });
        try
        {
            var taken = await _leases.FindOneAndUpdateAsync<BsonDocument>(
                filter,
                new PipelineUpdateDefinition<BsonDocument>(new[] { update }),
                new FindOneAndUpdateOptions<BsonDocument> { IsUpsert = true, ReturnDocument = ReturnDocument.After },
                cancellationToken);
            return Read(taken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Held by another: the upsert found no document it may change, and the name is taken.
            return (await GetAsync(name, cancellationToken))!;
        }
    }

    public Task ReleaseAsync(string name, string holder, long token, DateTimeOffset now, CancellationToken cancellationToken) =>
        _leases.UpdateOneAsync(
            new BsonDocument { { "_id", name }, { Holder, holder }, { Token, token } },
            new PipelineUpdateDefinition<BsonDocument>(new[] { new BsonDocument("$set", new BsonDocument(ExpiresAt, "$$NOW")) }),
            cancellationToken: cancellationToken);

    public async Task<SingletonLease?> GetAsync(string name, CancellationToken cancellationToken)
    {
        var document = await Retry(token => _leases.Find(new BsonDocument("_id", name)).FirstOrDefaultAsync(token), cancellationToken);
        return document is null ? null : Read(document);
    }

    public async Task<IReadOnlyList<SingletonLease>> ListAsync(CancellationToken cancellationToken)
    {
        var documents = await Retry(token => _leases.Find(new BsonDocument()).Sort(new BsonDocument("_id", 1)).ToListAsync(token), cancellationToken);
        return [.. documents.Select(Read)];
    }

    /// <summary>
    /// Refuses the transaction it runs in (<see cref="StaleFenceException"/>) unless the fence's holder still holds the lease
    /// under the fence's token. It writes to the lease's document, so that a takeover committing meanwhile conflicts with
    /// the transaction instead of passing unseen under its snapshot.
    /// </summary>
    public static async Task RequireAsync(MongoStoreContext database, IClientSessionHandle session, SingletonFence? fence, CancellationToken cancellationToken)
    {
        if (fence is null)
        {
            return;
        }
        var stamped = await database.Collection<BsonDocument>(SingletonLeasesCollection).UpdateOneAsync(session,
            new BsonDocument { { "_id", fence.Name }, { Holder, fence.Holder }, { Token, fence.Token } },
            new BsonDocument("$inc", new BsonDocument("fencedWrites", 1L)), cancellationToken: cancellationToken);
        if (stamped.MatchedCount == 0)
        {
            throw new StaleFenceException(fence);
        }
    }

    private static SingletonLease Read(BsonDocument document) =>
        new(document["_id"].AsString, document[Holder].AsString, document[Token].ToInt64(), new DateTimeOffset(document[ExpiresAt].ToUniversalTime(), TimeSpan.Zero));
}
