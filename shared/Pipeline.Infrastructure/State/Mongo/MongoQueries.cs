using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Contracts;
using static Pipeline.Infrastructure.State.Mongo.MongoMapping;

namespace Pipeline.Infrastructure.State.Mongo;

/// <summary>
/// The filters, sorts, pipelines and indexes of the MongoDB store, built apart from the store so that tests
/// can render them to BSON and check that every query has an index to run on, without a server.
/// </summary>
public static class MongoQueries
{
    private static FilterDefinitionBuilder<FileState> SagaFilter => Builders<FileState>.Filter;

    public static FilterDefinition<FileState> Files(FileQuery query)
    {
        var parts = new List<FilterDefinition<FileState>>();
        if (query.Campaign is not null) parts.Add(SagaFilter.Eq(s => s.Campaign, query.Campaign));
        if (query.State is not null) parts.Add(SagaFilter.Eq(s => s.CurrentState, query.State));
        if (query.Stream is not null) parts.Add(SagaFilter.Eq(s => s.Stream, query.Stream));
        if (query.RunFrom is not null) parts.Add(SagaFilter.Gte(s => s.Run, query.RunFrom.Value));
        if (query.RunTo is not null) parts.Add(SagaFilter.Lte(s => s.Run, query.RunTo.Value));
        if (query.Dataset is not null) parts.Add(SagaFilter.ElemMatch(s => s.Outputs, o => o.Output.Dataset == query.Dataset));
        if (query.FailureSignature is not null) parts.Add(SagaFilter.Eq(s => s.FailureSignature, query.FailureSignature));
        if (query.After is not null)
        {
            var (run, name) = FileCursor.Decode(query.After);
            parts.Add(SagaFilter.Or(
                SagaFilter.Gt(s => s.Run, run),
                SagaFilter.And(SagaFilter.Eq(s => s.Run, run), SagaFilter.Gt(s => s.LogicalName, name))));
        }
        return parts.Count == 0 ? SagaFilter.Empty : SagaFilter.And(parts);
    }

    public static SortDefinition<FileState> FileOrder { get; } =
        Builders<FileState>.Sort.Ascending(s => s.Run).Ascending(s => s.LogicalName);

    /// <summary>What a listing reads of each saga: its summary, never the history.</summary>
    public static ProjectionDefinition<FileState> SummaryProjection { get; } = Builders<FileState>.Projection
        .Include(s => s.Campaign).Include(s => s.Run).Include(s => s.Stream).Include(s => s.LogicalName)
        .Include(s => s.CurrentState).Include(s => s.Attempt).Include(s => s.UpdatedAt).Include(s => s.FailureReason);

    public static ProjectionDefinition<FileState> StalledProjection { get; } = Builders<FileState>.Projection
        .Include(s => s.Version).Include(s => s.CurrentState).Include(s => s.Campaign).Include(s => s.Run).Include(s => s.Stream);

    public static FilterDefinition<FileState> Stalled(DateTimeOffset now, DateTimeOffset? updatedBefore)
    {
        var late = SagaFilter.Lt(s => s.Deadline, now);
        var due = updatedBefore is null ? late : SagaFilter.Or(late, SagaFilter.Lt(s => s.UpdatedAt, updatedBefore.Value));
        return SagaFilter.And(SagaFilter.Nin(s => s.CurrentState, FileStates.Final), due);
    }

    public static SortDefinition<FileState> StalledOrder { get; } = Builders<FileState>.Sort.Ascending(s => s.UpdatedAt);

    /// <summary>The compare-and-set of a saga update: this id, still at the version that was read.</summary>
    public static FilterDefinition<FileState> SagaVersion(Guid id, int version) =>
        SagaFilter.And(SagaFilter.Eq(s => s.CorrelationId, id), SagaFilter.Eq(s => s.Version, version));

    /// <summary>Files per campaign and state.</summary>
    public static BsonDocument[] CountByState { get; } =
    [
        new("$group", new BsonDocument
        {
            { Fields.Id, new BsonDocument { { Fields.Campaign, "$" + Fields.Campaign }, { Fields.State, "$" + Fields.State } } },
            { "files", new BsonDocument("$sum", 1) },
        }),
    ];

    /// <summary>Failed files per campaign, stage, signature and release, with the latest failure and one reason.</summary>
    public static BsonDocument[] Failures(string? campaign)
    {
        var match = new BsonDocument(Fields.State, "Failed");
        if (campaign is not null)
        {
            match.Add(Fields.Campaign, campaign);
        }
        return
        [
            new("$match", match),
            new("$group", new BsonDocument
            {
                {
                    Fields.Id, new BsonDocument
                    {
                        { Fields.Campaign, "$" + Fields.Campaign },
                        { "stage", "$" + Fields.FailureStage },
                        { "signature", "$" + Fields.FailureSignature },
                        { "release", "$" + Fields.FailureRelease },
                    }
                },
                { "files", new BsonDocument("$sum", 1) },
                { "last", new BsonDocument("$max", "$" + Fields.UpdatedAt) },
                { "example", new BsonDocument("$min", "$" + Fields.FailureReason) },
            }),
        ];
    }

    /// <summary>Per run of a campaign: its files, and how many are past reconstruction.</summary>
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
            {
                "past", new BsonDocument("$sum", new BsonDocument("$cond", new BsonArray
                {
                    new BsonDocument("$in", new BsonArray { "$" + Fields.State, new BsonArray(FileStates.PastReconstruction.Order(StringComparer.Ordinal)) }),
                    1,
                    0,
                }))
            },
        }),
    ];

    public static FilterDefinition<CatalogEntry> CatalogOfKind(string kind, string? campaign)
    {
        var filter = Builders<CatalogEntry>.Filter;
        var ofKind = filter.Eq(c => c.Kind, kind);
        return campaign is null ? ofKind : filter.And(ofKind, filter.Eq(c => c.Campaign, campaign));
    }

    public static FilterDefinition<PendingOutput> Pending(string campaign, string dataset) =>
        Builders<PendingOutput>.Filter.And(
            Builders<PendingOutput>.Filter.Eq(o => o.Campaign, campaign),
            Builders<PendingOutput>.Filter.Eq(o => o.Dataset, dataset),
            Builders<PendingOutput>.Filter.Eq(o => o.MergedName, null));

    public static SortDefinition<PendingOutput> PendingOrder { get; } = Builders<PendingOutput>.Sort
        .Ascending(o => o.Run).Ascending(o => o.Section).Ascending(o => o.Stream).Ascending(o => o.OutputId);

    /// <summary>Outputs waiting per dataset: count, bytes, oldest and newest arrival.</summary>
    public static BsonDocument[] Buffers { get; } =
    [
        new("$match", new BsonDocument(Fields.MergedName, BsonNull.Value)),
        new("$group", new BsonDocument
        {
            { Fields.Id, new BsonDocument { { Fields.Campaign, "$" + Fields.Campaign }, { Fields.Dataset, "$" + Fields.Dataset } } },
            { "outputs", new BsonDocument("$sum", 1) },
            { "bytes", new BsonDocument("$sum", "$" + Fields.Size) },
            { "oldest", new BsonDocument("$min", "$" + Fields.AddedAt) },
            { "newest", new BsonDocument("$max", "$" + Fields.AddedAt) },
        }),
    ];

    /// <summary>An upsert that writes the whole output only if it is new, so the first record of an output wins.</summary>
    public static UpdateDefinition<PendingOutput> InsertOnly(PendingOutput output)
    {
        var fields = output.ToBsonDocument();
        fields.Remove(Fields.Id);
        return new BsonDocumentUpdateDefinition<PendingOutput>(new BsonDocument("$setOnInsert", fields));
    }

    /// <summary>One stage's bucket of one hour: its id is both, so concurrent first writes upsert the same document.</summary>
    public static FilterDefinition<BsonDocument> ActivityBucket(string stage, DateTimeOffset hour) =>
        new BsonDocument(Fields.Id, $"{stage}|{hour.ToUnixTimeMilliseconds()}");

    public static UpdateDefinition<BsonDocument> AddActivity(string stage, DateTimeOffset hour, long bytes) => new BsonDocument
    {
        { "$inc", new BsonDocument { { "files", 1L }, { "bytes", bytes } } },
        { "$setOnInsert", new BsonDocument { { "stage", stage }, { "hour", hour.UtcDateTime } } },
    };

    public static FilterDefinition<BsonDocument> ActivitySince(DateTimeOffset hour) =>
        Builders<BsonDocument>.Filter.Gte("hour", hour.UtcDateTime);

    /// <summary>The active alert with this key (a unique partial index keeps it to one).</summary>
    public static FilterDefinition<BsonDocument> ActiveAlert(string key) =>
        new BsonDocument { { "key", key }, { "active", true } };

    /// <summary>Outputs of a dataset the campaign's files reported, per run.</summary>
    public static BsonDocument[] ReportedOutputs(string campaign, string dataset, IEnumerable<int> runs) =>
    [
        new("$match", new BsonDocument { { Fields.Campaign, campaign }, { Fields.Run, new BsonDocument("$in", new BsonArray(runs.Distinct())) } }),
        new("$unwind", "$outputs"),
        new("$match", new BsonDocument("outputs.output." + Fields.Dataset, dataset)),
        new("$group", new BsonDocument { { Fields.Id, "$" + Fields.Run }, { "outputs", new BsonDocument("$sum", 1) } }),
    ];

    /// <summary>Outputs of a dataset the merger received (merged or waiting), per run.</summary>
    public static BsonDocument[] ReceivedOutputs(string campaign, string dataset, IEnumerable<int> runs) =>
    [
        new("$match", new BsonDocument
        {
            { Fields.Campaign, campaign }, { Fields.Dataset, dataset }, { Fields.Run, new BsonDocument("$in", new BsonArray(runs.Distinct())) },
        }),
        new("$group", new BsonDocument { { Fields.Id, "$" + Fields.Run }, { "outputs", new BsonDocument("$sum", 1) } }),
    ];

    /// <summary>Indexes per collection, created at start-up (creating an existing index is a no-op).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<CreateIndexModel<BsonDocument>>> Indexes { get; } =
        new Dictionary<string, IReadOnlyList<CreateIndexModel<BsonDocument>>>
        {
            [MongoPipelineStore.FileSagas] =
            [
                // Listings page in (run, name) order: one index per filter the API offers, ending in (run, name), so a page never sorts.
                Index("run_name", Keys(Fields.Run, Fields.Name)),
                Index("state_run_name", Keys(Fields.State, Fields.Run, Fields.Name)),
                Index("campaign_run_name", Keys(Fields.Campaign, Fields.Run, Fields.Name)),
                Index("campaign_state_run_name", Keys(Fields.Campaign, Fields.State, Fields.Run, Fields.Name)),
                Index("campaign_stream_run_name", Keys(Fields.Campaign, Fields.Stream, Fields.Run, Fields.Name)),
                Index("stream_run_name", Keys(Fields.Stream, Fields.Run, Fields.Name)),
                Index("state_stream_run_name", Keys(Fields.State, Fields.Stream, Fields.Run, Fields.Name)),
                Index("campaign_state_stream_run_name", Keys(Fields.Campaign, Fields.State, Fields.Stream, Fields.Run, Fields.Name)),
                // The watchdog's sweep: each branch of its $or on an index of its own.
                Index("deadline", Keys(Fields.Deadline)),
                Index("updated", Keys(Fields.UpdatedAt)),
            ],
            [MongoPipelineStore.Catalog] =
            [
                Index("name_area", Keys(Fields.Name, Fields.Area), unique: true),
                Index("kind_campaign_dataset_name", Keys(Fields.Kind, Fields.Campaign, Fields.Dataset, Fields.Name)),
            ],
            [MongoPipelineStore.MergeOutputs] =
            [
                Index("pending", Keys(Fields.Campaign, Fields.Dataset, Fields.MergedName, Fields.Run, Fields.Section, Fields.Stream)),
                Index("merged", Keys(Fields.MergedName)),
            ],
            [MongoPipelineStore.MergedFiles] =
            [
                Index("archived_updated", Keys(Fields.Archived, Fields.UpdatedAt)),
                Index("dataset_archived_created", Keys(Fields.Campaign, Fields.Dataset, Fields.Archived, "createdAt", Fields.Name)),
            ],
            [MongoPipelineStore.AreaFiles] =
            [
                Index("area_at", Keys(Fields.Area, "at")),
            ],
            [MongoPipelineStore.Activity] =
            [
                Index("hour_stage", Keys("hour", "stage")),
            ],
            [MongoPipelineStore.Alerts] =
            [
                new(Keys("key"), new CreateIndexOptions<BsonDocument>
                {
                    Name = "active_key",
                    Unique = true,
                    PartialFilterExpression = new BsonDocument("active", true),
                }),
                Index("raised", Keys("raisedAt")),
            ],
        };

    private static IndexKeysDefinition<BsonDocument> Keys(params string[] fields) =>
        Builders<BsonDocument>.IndexKeys.Combine(fields.Select(f => Builders<BsonDocument>.IndexKeys.Ascending(f)));

    private static CreateIndexModel<BsonDocument> Index(string name, IndexKeysDefinition<BsonDocument> keys, bool unique = false) =>
        new(keys, new CreateIndexOptions { Name = name, Unique = unique });
}
