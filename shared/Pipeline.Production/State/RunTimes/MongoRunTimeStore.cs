using System.Globalization;
using MongoDB.Bson;
using MongoDB.Driver;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>Campaigns' run-time histograms in MongoDB: one document per campaign, its buckets added to with $inc.</summary>
public sealed class MongoRunTimeStore(MongoStoreContext db) : IRunTimeStore, IMongoStore
{
    public const string RunTimesCollection = "run_times";

    public static IReadOnlyList<MongoCollection> Schema { get; } = [new(RunTimesCollection)];

    private readonly IMongoCollection<BsonDocument> _runTimes = db.Collection<BsonDocument>(RunTimesCollection);

    private const string Buckets = "buckets";

    public async Task AddAsync(string campaign, IReadOnlyDictionary<int, long> files, CancellationToken cancellationToken)
    {
        if (files.Count == 0)
        {
            return;
        }
        var update = Builders<BsonDocument>.Update.Combine(files.Select(f => Builders<BsonDocument>.Update.Inc($"{Buckets}.{f.Key.ToString(CultureInfo.InvariantCulture)}", f.Value)));
        await _runTimes.UpdateOneAsync(Builders<BsonDocument>.Filter.Eq("_id", campaign), update, new UpdateOptions { IsUpsert = true }, cancellationToken);
    }

    public async Task<RunTimeHistogram> GetAsync(string campaign, CancellationToken cancellationToken)
    {
        var document = await Retry(token => _runTimes.Find(Builders<BsonDocument>.Filter.Eq("_id", campaign)).FirstOrDefaultAsync(token), cancellationToken);
        if (document is null || !document.TryGetValue(Buckets, out var buckets))
        {
            return RunTimeHistogram.Empty;
        }
        return new RunTimeHistogram(buckets.AsBsonDocument.ToDictionary(e => int.Parse(e.Name, CultureInfo.InvariantCulture), e => e.Value.ToInt64()));
    }
}
