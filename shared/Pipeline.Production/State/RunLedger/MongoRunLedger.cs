using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Contracts;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>The merger's ledger of each run's files in MongoDB: one document per file, with its outputs per dataset.</summary>
public sealed class MongoRunLedger(MongoStoreContext db) : IRunLedger, IMongoStore
{
    public const string RunFilesCollection = "run_files";

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(RunFilesCollection,
        [
            // The oldest open run: equality on (campaign, open), the first run in index order.
            MongoCollection.Index("campaign_open_run", Fields.Campaign, Fields.Open, Fields.Run),
            MongoCollection.Index("campaign_run", Fields.Campaign, Fields.Run),
            MongoCollection.Index("campaign_dataset_run", Fields.Campaign, "outputs." + Fields.Dataset, Fields.Run),
        ]),
    ];

    private readonly IMongoCollection<BsonDocument> _runFiles = db.Collection<BsonDocument>(RunFilesCollection);

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
            await Retry(token => _runFiles.ReplaceOneAsync(OlderReport(progress.FileId, progress.Sequence), document,
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
        foreach (var group in await AggregateAsync(_runFiles, RunProgress(campaign, progress.Keys), cancellationToken))
        {
            progress[group[Fields.Id].AsInt32] = new RunProgress(group["files"].ToInt32(), group["past"].ToInt32());
        }
        return progress;
    }

    public async Task<int?> OldestOpenRunAsync(string campaign, CancellationToken cancellationToken)
    {
        var first = await Retry(token => _runFiles.Find(OpenFiles(campaign))
            .Sort(Builders<BsonDocument>.Sort.Ascending(Fields.Run)).Limit(1).FirstOrDefaultAsync(token), cancellationToken);
        return first?[Fields.Run].AsInt32;
    }

    public async Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken)
    {
        var groups = await AggregateAsync(_runFiles, ReportedOutputs(campaign, dataset, fromRun, toRun), cancellationToken);
        return groups.Where(g => g["outputs"].ToInt32() > 0).ToDictionary(g => g[Fields.Id].AsInt32, g => g["outputs"].ToInt32());
    }

    /// <summary>Per run of a campaign: the files the run ledger knows, and how many are closed (past reconstruction).</summary>
    public static BsonDocument[] RunProgress(string campaign, IEnumerable<int> runs) =>
    [
        new("$match", new BsonDocument
        {
            { Fields.Campaign, campaign },
            { Fields.Run, new BsonDocument("$in", new BsonArray(runs)) },
        }),
        new("$group", new BsonDocument
        {
            { Fields.Id, "$" + Fields.Run },
            { "files", new BsonDocument("$sum", 1) },
            { "past", new BsonDocument("$sum", new BsonDocument("$cond", new BsonArray { "$" + Fields.Open, 0, 1 })) },
        }),
    ];

    /// <summary>A file's ledger document if it holds a report older than <paramref name="sequence"/>.</summary>
    public static FilterDefinition<BsonDocument> OlderReport(Guid file, long sequence) =>
        Builders<BsonDocument>.Filter.Eq(Fields.Id, new BsonBinaryData(file, GuidRepresentation.Standard))
        & Builders<BsonDocument>.Filter.Lt(Fields.Sequence, sequence);

    /// <summary>A campaign's files that may still produce outputs.</summary>
    public static FilterDefinition<BsonDocument> OpenFiles(string campaign) =>
        Builders<BsonDocument>.Filter.Eq(Fields.Campaign, campaign) & Builders<BsonDocument>.Filter.Eq(Fields.Open, true);

    /// <summary>Outputs of a dataset the campaign's files reported to the run ledger, per run.</summary>
    public static BsonDocument[] ReportedOutputs(string campaign, string dataset, int fromRun, int toRun) =>
    [
        new("$match", new BsonDocument { { Fields.Campaign, campaign }, { Fields.Run, RunRange(fromRun, toRun) }, { "outputs." + Fields.Dataset, dataset } }),
        new("$unwind", "$outputs"),
        new("$match", new BsonDocument("outputs." + Fields.Dataset, dataset)),
        new("$group", new BsonDocument { { Fields.Id, "$" + Fields.Run }, { "outputs", new BsonDocument("$sum", "$outputs.outputs") } }),
    ];
}
