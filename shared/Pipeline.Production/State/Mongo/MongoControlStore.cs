using MongoDB.Driver;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>What operators have paused, in MongoDB.</summary>
public sealed class MongoControlStore(MongoStoreContext db) : IControlStore
{
    public async Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken)
    {
        try
        {
            await db.Paused.InsertOneAsync(new PausedStage(stage, by, at), cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Paused already: the first pause stands.
        }
    }

    public async Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken) =>
        (await db.Paused.DeleteOneAsync(p => p.Stage == stage, cancellationToken)).DeletedCount > 0;

    public async Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken) =>
        await Retry(token => db.Paused.Find(FilterDefinition<PausedStage>.Empty).SortBy(p => p.Stage).ToListAsync(token), cancellationToken);
}
