using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>What operators have paused, in MongoDB.</summary>
public sealed class MongoControlStore(MongoStoreContext db) : IControlStore, IMongoStore
{
    public const string PausedCollection = "paused";

    /// <summary>The concern's records with their natural ids (see <see cref="IMongoStore.MapRecords"/>).</summary>
    public static void MapRecords()
    {
        BsonClassMap.TryRegisterClassMap<PausedStage>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.Stage);
        });
    }

    public static IReadOnlyList<MongoCollection> Schema { get; } = [new(PausedCollection)];

    private readonly IMongoCollection<PausedStage> _paused = db.Collection<PausedStage>(PausedCollection);

    public async Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken)
    {
        try
        {
            await _paused.InsertOneAsync(new PausedStage(stage, by, at), cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Paused already: the first pause stands.
        }
    }

    public async Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken) =>
        (await _paused.DeleteOneAsync(p => p.Stage == stage, cancellationToken)).DeletedCount > 0;

    public async Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken) =>
        await Retry(token => _paused.Find(FilterDefinition<PausedStage>.Empty).SortBy(p => p.Stage).ToListAsync(token), cancellationToken);
}
