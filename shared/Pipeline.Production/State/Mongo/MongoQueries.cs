using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Contracts;
using static Pipeline.Production.State.Mongo.MongoMapping;

namespace Pipeline.Production.State.Mongo;

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
        // A batch job outlives the transport's messages: its file waits for adoption or its deadline, not for recovery.
        var inBatch = SagaFilter.And(SagaFilter.Eq(s => s.CurrentState, FileStates.Reconstructing), SagaFilter.Ne(s => s.BatchJob, null));
        var due = updatedBefore is null ? late : SagaFilter.Or(late, SagaFilter.And(SagaFilter.Lt(s => s.UpdatedAt, updatedBefore.Value), SagaFilter.Not(inBatch)));
        return SagaFilter.And(SagaFilter.Nin(s => s.CurrentState, FileStates.Final), due);
    }

    public static SortDefinition<FileState> StalledOrder { get; } = Builders<FileState>.Sort.Ascending(s => s.UpdatedAt);

    /// <summary>The compare-and-set of a saga update: this id, still at the version that was read.</summary>
    public static FilterDefinition<FileState> SagaVersion(Guid id, int version) =>
        SagaFilter.And(SagaFilter.Eq(s => s.CorrelationId, id), SagaFilter.Eq(s => s.Version, version));

    /// <summary>What an update needs to know of the saga it replaced: the state it was in.</summary>
    public static ProjectionDefinition<FileState, BsonDocument> StateProjection { get; } =
        Builders<FileState>.Projection.Include(s => s.CurrentState).Exclude(s => s.CorrelationId);

    /// <summary>Documents each (campaign, state) count is spread over; a file always counts in the same one.</summary>
    public const int StateCountShards = 8;

    /// <summary>The shard a file counts in: from its id's bytes, the same in every process and version.</summary>
    public static int StateCountShard(Guid file) => (int)(BitConverter.ToUInt32(file.ToByteArray(), 0) % StateCountShards);

    /// <summary>Adds <paramref name="delta"/> to the files a campaign has in a state (creating the count at 0 if new).</summary>
    public static UpdateOneModel<BsonDocument> StateCountChange(string campaign, string state, Guid file, long delta) =>
        StateCountChange(campaign, state, StateCountShard(file), delta);

    private static UpdateOneModel<BsonDocument> StateCountChange(string campaign, string state, int shard, long delta) =>
        new(new BsonDocument(Fields.Id, new BsonDocument { { "c", campaign }, { "s", state }, { "n", shard } }),
            new BsonDocument
            {
                { "$inc", new BsonDocument("files", delta) },
                { "$setOnInsert", new BsonDocument { { Fields.Campaign, campaign }, { Fields.State, state } } },
            })
        { IsUpsert = true };

    /// <summary>The count changes of many new sagas: one per (campaign, state, shard) they fall in.</summary>
    public static IReadOnlyList<UpdateOneModel<BsonDocument>> StateCountChanges(IEnumerable<FileState> added) =>
        [.. added.GroupBy(s => (s.Campaign, s.CurrentState, Shard: StateCountShard(s.CorrelationId)))
            .Select(g => StateCountChange(g.Key.Campaign, g.Key.CurrentState, g.Key.Shard, g.Count()))];

    /// <summary>The counts of every (campaign, state) with files, from their shards, in (campaign, state) order.</summary>
    public static IReadOnlyList<StateCount> SumStateCounts(IEnumerable<BsonDocument> shards) =>
        [.. shards
            .GroupBy(d => (Campaign: d[Fields.Campaign].AsString, State: d[Fields.State].AsString))
            .Select(g => new StateCount(g.Key.Campaign, g.Key.State, g.Sum(d => d["files"].ToInt64())))
            .Where(c => c.Files > 0)
            .OrderBy(c => c.Campaign, StringComparer.Ordinal)
            .ThenBy(c => c.State, StringComparer.Ordinal)];

    /// <summary>
    /// Files per campaign and state, grouped over every saga: only for the one-time count of a database made before
    /// counts were kept (see <see cref="MongoStoreContext.InitialiseAsync"/>).
    /// </summary>
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
        var match = new BsonDocument(Fields.State, FileStates.Failed);
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

    /// <summary>
    /// One stage's bucket of one campaign at one resolution: its id is all four, so concurrent first writes upsert the
    /// same document. It expires (a TTL index) once it falls out of its resolution's window.
    /// </summary>
    public static FilterDefinition<BsonDocument> ThroughputBucket(ThroughputResolution resolution, string stage, string campaign, DateTimeOffset bucket) =>
        new BsonDocument(Fields.Id, $"{(int)resolution}|{stage}|{campaign}|{bucket.ToUnixTimeMilliseconds()}");

    public static UpdateDefinition<BsonDocument> AddThroughput(ThroughputResolution resolution, string stage, string campaign, DateTimeOffset bucket, long bytes) => new BsonDocument
    {
        { "$inc", new BsonDocument { { "files", 1L }, { "bytes", bytes } } },
        {
            "$setOnInsert", new BsonDocument
            {
                { "resolution", (int)resolution }, { "stage", stage }, { "campaign", campaign }, { "bucket", bucket.UtcDateTime },
                { "expireAt", (bucket + ThroughputWindow.Kept(resolution)).UtcDateTime },
            }
        },
    };

    public static FilterDefinition<BsonDocument> ThroughputSince(ThroughputResolution resolution, DateTimeOffset bucket) =>
        new BsonDocument { { "resolution", (int)resolution }, { "bucket", new BsonDocument("$gte", bucket.UtcDateTime) } };

    /// <summary>The active alert with this key (a unique partial index keeps it to one).</summary>
    public static FilterDefinition<BsonDocument> ActiveAlert(string key) =>
        new BsonDocument { { "key", key }, { "active", true } };

    private static BsonDocument RunRange(int fromRun, int toRun) => new() { { "$gte", fromRun }, { "$lte", toRun } };

    /// <summary>A dataset's outputs already merged (the highest run among them tells how far the dataset is complete).</summary>
    public static FilterDefinition<PendingOutput> MergedOf(string campaign, string dataset) =>
        Builders<PendingOutput>.Filter.Eq(o => o.Campaign, campaign) & Builders<PendingOutput>.Filter.Eq(o => o.Dataset, dataset)
        & Builders<PendingOutput>.Filter.Ne(o => o.MergedName, null);

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

    /// <summary>Outputs of a dataset the merger received (merged or waiting), per run.</summary>
    public static BsonDocument[] ReceivedOutputs(string campaign, string dataset, int fromRun, int toRun) =>
    [
        new("$match", new BsonDocument { { Fields.Campaign, campaign }, { Fields.Dataset, dataset }, { Fields.Run, RunRange(fromRun, toRun) } }),
        new("$group", new BsonDocument { { Fields.Id, "$" + Fields.Run }, { "outputs", new BsonDocument("$sum", 1) } }),
    ];

    /// <summary>Indexes per collection, created at start-up (creating an existing index is a no-op).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<CreateIndexModel<BsonDocument>>> Indexes { get; } =
        new Dictionary<string, IReadOnlyList<CreateIndexModel<BsonDocument>>>
        {
            [MongoStoreContext.FileSagas] =
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
            [MongoStoreContext.CatalogCollection] =
            [
                Index("name_area", Keys(Fields.Name, Fields.Area), unique: true),
                Index("kind_campaign_dataset_name", Keys(Fields.Kind, Fields.Campaign, Fields.Dataset, Fields.Name)),
                // Every campaign's files of a kind, in (dataset, name) order: without a campaign, the index above cannot give that order.
                Index("kind_dataset_name", Keys(Fields.Kind, Fields.Dataset, Fields.Name)),
            ],
            [MongoStoreContext.MergeOutputs] =
            [
                // Ends in _id, the output's id, which the pending order ends in: a page never sorts in memory.
                Index("pending_ordered", Keys(Fields.Campaign, Fields.Dataset, Fields.MergedName, Fields.Run, Fields.Section, Fields.Stream, Fields.Id)),
                Index("merged", Keys(Fields.MergedName)),
            ],
            [MongoStoreContext.MergedFiles] =
            [
                Index("archived_updated", Keys(Fields.Archived, Fields.UpdatedAt)),
                // A merged file's name is its _id: the archive order (created, name) is (createdAt, _id).
                Index("dataset_unarchived_order", Keys(Fields.Campaign, Fields.Dataset, Fields.Archived, "createdAt", Fields.Id)),
            ],
            [MongoStoreContext.RunFilesCollection] =
            [
                // The oldest open run: equality on (campaign, open), the first run in index order.
                Index("campaign_open_run", Keys(Fields.Campaign, Fields.Open, Fields.Run)),
                Index("campaign_run", Keys(Fields.Campaign, Fields.Run)),
                Index("campaign_dataset_run", Keys(Fields.Campaign, "outputs." + Fields.Dataset, Fields.Run)),
            ],
            [MongoStoreContext.AnnouncementsCollection] =
            [
                Index("run_part", Keys(Fields.Run, "part")),
            ],
            [MongoStoreContext.AreaFilesCollection] =
            [
                Index("area_at", Keys(Fields.Area, "at")),
            ],
            [MongoStoreContext.ActivityCollection] =
            [
                Index("resolution_bucket", Keys("resolution", "bucket")),
                new(Keys("expireAt"), new CreateIndexOptions { Name = "expire_at", ExpireAfter = TimeSpan.Zero }),
            ],
            [MongoStoreContext.AlertsCollection] =
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

    /// <summary>
    /// Indexes of earlier versions, dropped at start-up: an index cannot change its keys under the same name, so a
    /// changed one gets a new name and the old one goes.
    /// </summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> ObsoleteIndexes { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        [MongoStoreContext.MergeOutputs] = ["pending"],
        [MongoStoreContext.MergedFiles] = ["dataset_archived_created"],
    };

    /// <summary>Merged files not yet archived: an equality on false (a negation would scan two index ranges).</summary>
    public static FilterDefinition<MergedFileRecord> Unarchived { get; } = Builders<MergedFileRecord>.Filter.Eq(m => m.Archived, false);

    public static FilterDefinition<MergedFileRecord> UnarchivedOfDataset(string campaign, string dataset) =>
        Builders<MergedFileRecord>.Filter.Eq(m => m.Campaign, campaign) & Builders<MergedFileRecord>.Filter.Eq(m => m.Dataset, dataset) & Unarchived;

    public static SortDefinition<MergedFileRecord> ArchiveOrder { get; } = Builders<MergedFileRecord>.Sort.Ascending(m => m.CreatedAt).Ascending(m => m.Name);

    /// <summary>The most characters of announcement JSON in one part: at most 3 bytes each in UTF-8, well under 16 MiB.</summary>
    public const int AnnouncementPartChars = 2_000_000;

    /// <summary>An announcement's JSON in parts of at most <see cref="AnnouncementPartChars"/> characters, each one document.</summary>
    public static IReadOnlyList<BsonDocument> AnnouncementParts(int run, string json) =>
        [.. json.Chunk(AnnouncementPartChars).Select((part, index) => new BsonDocument
        {
            { Fields.Id, $"{run}:{index}" }, { Fields.Run, run }, { "part", index }, { "json", new string(part) },
        })];

    public static FilterDefinition<BsonDocument> AnnouncementOf(int run) => Builders<BsonDocument>.Filter.Eq(Fields.Run, run);

    public static SortDefinition<BsonDocument> AnnouncementOrder { get; } = Builders<BsonDocument>.Sort.Ascending("part");

    public static string JoinAnnouncement(IEnumerable<BsonDocument> parts) => string.Concat(parts.OrderBy(p => p["part"].AsInt32).Select(p => p["json"].AsString));

    /// <summary>Runs after <paramref name="afterRun"/> whose announcement is kept, inline (older runs) or in parts.</summary>
    public static FilterDefinition<RunDocument> AnnouncedAfter(int afterRun)
    {
        var filter = Builders<RunDocument>.Filter;
        return filter.Gt(r => r.Run, afterRun) & (filter.Ne(r => r.Announcement, null) | filter.Gt(r => r.AnnouncementParts, 0));
    }

    /// <summary>What the run listing reads of a run: never its announcement.</summary>
    public static ProjectionDefinition<RunDocument> RunSummaryProjection { get; } =
        Builders<RunDocument>.Projection.Include(r => r.Files).Include(r => r.RegisteredAt);

    private static IndexKeysDefinition<BsonDocument> Keys(params string[] fields) =>
        Builders<BsonDocument>.IndexKeys.Combine(fields.Select(f => Builders<BsonDocument>.IndexKeys.Ascending(f)));

    private static CreateIndexModel<BsonDocument> Index(string name, IndexKeysDefinition<BsonDocument> keys, bool unique = false) =>
        new(keys, new CreateIndexOptions { Name = name, Unique = unique });
}
