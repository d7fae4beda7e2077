using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Contracts;
using static Pipeline.Production.State.Mongo.MongoMapping;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>The merger's ledger of each run's files in MongoDB: one document per file, with its outputs per dataset.</summary>
public sealed class MongoRunLedger(MongoStoreContext db) : IRunLedger
{
    public async Task RecordAsync(RunFileProgress progress, CancellationToken cancellationToken)
    {
        var document = new BsonDocument
        {
            { Fields.Id, new BsonBinaryData(progress.FileId, GuidRepresentation.Standard) },
            { Fields.Campaign, progress.Campaign },
            { Fields.Run, progress.Run },
            { Fields.Open, progress.Open },
            { Fields.Sequence, progress.Sequence },
            { "outputs", new BsonArray(progress.Outputs.Select(o => new BsonDocument { { Fields.Dataset, o.Dataset }, { "outputs", o.Outputs } })) },
        };
        try
        {
            // Replaced only by a later report; an earlier one finds no document to replace, and its upsert hits the
            // existing _id: a duplicate key, which means "already newer".
            await Retry(token => db.RunFiles.ReplaceOneAsync(MongoQueries.OlderReport(progress.FileId, progress.Sequence), document,
                new ReplaceOptions { IsUpsert = true }, token), cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
        }
    }

    public async Task<IReadOnlyDictionary<int, RunProgress>> RunProgressAsync(string campaign, IReadOnlyCollection<int> runs, CancellationToken cancellationToken)
    {
        var progress = runs.Distinct().ToDictionary(run => run, _ => new RunProgress(0, 0));
        if (progress.Count == 0)
        {
            return progress;
        }
        foreach (var group in await AggregateAsync(db.RunFiles, MongoQueries.RunProgress(campaign, progress.Keys), cancellationToken))
        {
            progress[group[Fields.Id].AsInt32] = new RunProgress(group["files"].ToInt32(), group["past"].ToInt32());
        }
        return progress;
    }

    public async Task<int?> OldestOpenRunAsync(string campaign, CancellationToken cancellationToken)
    {
        var first = await Retry(token => db.RunFiles.Find(MongoQueries.OpenFiles(campaign))
            .Sort(Builders<BsonDocument>.Sort.Ascending(Fields.Run)).Limit(1).FirstOrDefaultAsync(token), cancellationToken);
        return first?[Fields.Run].AsInt32;
    }

    public async Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(db.RunFiles, MongoQueries.ReportedOutputs(campaign, dataset, fromRun, toRun), cancellationToken);
        return groups.Where(g => g["outputs"].ToInt32() > 0).ToDictionary(g => g[Fields.Id].AsInt32, g => g["outputs"].ToInt32());
    }
}
