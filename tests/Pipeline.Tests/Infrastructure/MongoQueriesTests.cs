using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using Pipeline.Contracts;
using Pipeline.Production.State;

namespace Pipeline.Tests.Infrastructure;

/// <summary>
/// What the MongoDB store sends, checked without a server: documents as the queries expect them, and
/// every query's filter and order served by an index.
/// </summary>
public sealed class When_rendering_mongodb_queries
{
    static When_rendering_mongodb_queries() => MongoMapping.Register();

    private static BsonDocument Render<T>(FilterDefinition<T> filter) =>
        filter.Render(new RenderArgs<T>(BsonSerializer.LookupSerializer<T>(), BsonSerializer.SerializerRegistry));

    private static BsonDocument Render<T>(SortDefinition<T> sort) =>
        sort.Render(new RenderArgs<T>(BsonSerializer.LookupSerializer<T>(), BsonSerializer.SerializerRegistry));

    private static string[] IndexFields(string collection, string name) => StoreConcerns.MongoCollectionNamed(collection).FieldsOf(name);

    private static IEnumerable<string[]> AllIndexFields(string collection) =>
        StoreConcerns.MongoCollectionNamed(collection).Indexes.Select(index => IndexFields(collection, index.Options.Name));

    public static TheoryData<string?, string?, string?, bool> EveryListingFilter()
    {
        var data = new TheoryData<string?, string?, string?, bool>();
        foreach (var campaign in new[] { null, "prompt" })
        foreach (var state in new[] { null, "Failed" })
        foreach (var stream in new[] { null, "physics" })
        foreach (var runRange in new[] { false, true })
        {
            data.Add(campaign, state, stream, runRange);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(EveryListingFilter))]
    public void Should_serve_every_file_listing_from_an_index_in_page_order(string? campaign, string? state, string? stream, bool runRange)
    {
        var query = new FileQuery(campaign, state, runRange ? 10 : null, runRange ? 20 : null, stream, After: FileCursor.Encode(12, "raw/b"));

        var filter = Render(MongoFileSagaStore.Files(query));

        var equalities = filter.Names.Where(n => n is "campaign" or "state" or "stream").ToHashSet();
        Assert.Equal(new[] { campaign is null ? null : "campaign", state is null ? null : "state", stream is null ? null : "stream" }.OfType<string>().ToHashSet(), equalities);
        // An index that starts with exactly the equality fields and goes on with (run, name) answers the page
        // in order, without a sort in memory, and the cursor's range runs on its tail.
        Assert.Contains(AllIndexFields(MongoFileSagaStore.SagasCollection), fields =>
            fields.Length == equalities.Count + 2
            && fields.Take(equalities.Count).ToHashSet().SetEquals(equalities)
            && fields[^2..].SequenceEqual(["run", "name"]));
        Assert.Equal(new BsonDocument { { "run", 1 }, { "name", 1 } }, Render(MongoFileSagaStore.FileOrder));
        Assert.Contains("$or", filter.ToJson());
    }

    [Fact]
    public void Should_find_files_by_an_output_dataset_and_a_failure_signature()
    {
        var filter = Render(MongoFileSagaStore.Files(new FileQuery(Dataset: "muon", FailureSignature: "staging: tape error")));

        Assert.Equal(new BsonDocument
        {
            { "outputs", new BsonDocument("$elemMatch", new BsonDocument("output.dataset", "muon")) },
            { "failureSignature", "staging: tape error" },
        }, filter);
    }

    [Fact]
    public void Should_render_the_saga_compare_and_set_on_id_and_version()
    {
        var id = Guid.Parse("6f1c2d3e-4b5a-5968-8777-0123456789ab");

        var filter = Render(MongoFileSagaStore.SagaVersion(id, 7));

        Assert.Equal(new BsonDocument { { "_id", new BsonBinaryData(id, GuidRepresentation.Standard) }, { "version", 7 } }, filter);
    }

    [Fact]
    public void Should_look_for_stalled_files_among_unfinished_ones_on_indexed_fields()
    {
        var now = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

        var filter = Render(MongoFileSagaStore.Stalled(now, now.AddHours(-1)));

        Assert.Equal(new BsonArray { "Archived", "Cancelled", "Failed" }, new BsonArray(filter["state"]["$nin"].AsBsonArray.OrderBy(v => v.AsString)));
        var branches = filter["$or"].AsBsonArray.Select(b => b.AsBsonDocument).ToArray();
        Assert.Equal(new BsonDateTime(now.UtcDateTime), branches[0]["deadline"]["$lt"]);
        Assert.Equal(new BsonDateTime(now.AddHours(-1).UtcDateTime), branches[1]["updatedAt"]["$lt"]);
        Assert.Equal(["deadline"], IndexFields(MongoFileSagaStore.SagasCollection, "deadline"));
        Assert.Equal(["updatedAt"], IndexFields(MongoFileSagaStore.SagasCollection, "updated"));
        Assert.Equal("deadline", Assert.Single(Render(MongoFileSagaStore.Stalled(now, null)).Names.Except(["state"])));
    }

    [Fact]
    public void Should_take_pending_outputs_in_merge_order_from_one_index()
    {
        var filter = Render(MongoMergeStore.Pending("prompt", "muon"));
        var order = Render(MongoMergeStore.PendingOrder);

        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "dataset", "muon" }, { "mergedName", BsonNull.Value } }, filter);
        Assert.Equal(["run", "section", "stream", "_id"], order.Names);
        // The whole order, _id included, is the index's tail: a page is read in order, never sorted in memory.
        Assert.Equal([.. filter.Names, .. order.Names], IndexFields(MongoMergeStore.OutputsCollection, "pending_ordered"));
    }

    [Fact]
    public void Should_keep_catalog_entries_unique_by_name_and_area()
    {
        var index = StoreConcerns.MongoCollectionNamed(MongoRunCatalog.CatalogCollection).Indexes.Single(i => i.Options.Name == "name_area");

        Assert.True(index.Options.Unique);
        Assert.Equal(["name", "area"], IndexFields(MongoRunCatalog.CatalogCollection, "name_area"));
        Assert.Equal(new BsonDocument { { "kind", "merged" }, { "campaign", "prompt" } }, Render(MongoRunCatalog.CatalogOfKind("merged", "prompt")));
    }

    [Fact]
    public void Should_store_a_saga_under_the_names_its_queries_use_and_read_it_back_whole()
    {
        var saga = new FileState
        {
            CorrelationId = Guid.NewGuid(),
            Version = 3,
            CurrentState = "Reconstructing",
            Campaign = "prompt",
            Run = 1000,
            Stream = "physics",
            Section = 2,
            LogicalName = "raw/run001000/physics/a.raw",
            Size = 5_000_000_000,
            Adler32 = "0badcafe",
            Attempt = 2,
            Deadline = new DateTimeOffset(2026, 11, 26, 12, 0, 0, 123, TimeSpan.Zero),
            UpdatedAt = new DateTimeOffset(2026, 11, 26, 11, 0, 0, TimeSpan.Zero),
            LeaseExpiresAt = null,
            Outputs = [new TrackedOutput { Output = new OutputFile("o1", "muon", "jobs/o1.evt", 10, "00000001", 3, 1000, 2), Archived = true }],
            LogNames = ["logs/a.log"],
            Datasets = [new DatasetSelection("muon", 0x8000_0001u)],
            Because = "not stored",
        };
        saga.Record(saga.UpdatedAt, "Staged", "FileStaged", "from cache");

        var document = saga.ToBsonDocument();
        var back = BsonSerializer.Deserialize<FileState>(document);

        foreach (var field in new[] { "_id", "version", "state", "campaign", "run", "stream", "name", "attempt", "deadline", "updatedAt" })
        {
            Assert.True(document.Contains(field), $"a saga document has no '{field}' for its queries and indexes");
        }
        Assert.Equal(BsonBinarySubType.UuidStandard, document["_id"].AsBsonBinaryData.SubType);
        Assert.Equal(BsonType.DateTime, document["deadline"].BsonType);
        Assert.Equal((saga.CorrelationId, 3, "Reconstructing", "raw/run001000/physics/a.raw", 5_000_000_000L), (back.CorrelationId, back.Version, back.CurrentState, back.LogicalName, back.Size));
        Assert.Equal(saga.Deadline, back.Deadline);
        Assert.Null(back.LeaseExpiresAt);
        Assert.Equal(saga.Outputs[0].Output, back.Outputs[0].Output);
        Assert.True(back.Outputs[0].Archived);
        Assert.Equal(saga.History, back.History);
        Assert.Equal(saga.Datasets, back.Datasets);
        Assert.False(document.Contains("because"), "the history narration is not stored");
    }

    [Fact]
    public void Should_read_back_catalog_entries_outputs_merged_files_and_runs()
    {
        var at = new DateTimeOffset(2026, 11, 26, 11, 0, 0, TimeSpan.Zero);
        var entry = new CatalogEntry("merged/m", "archive", CatalogEntry.Merged, "prompt", "muon", 10, "00000001", 4,
            [new MergedSource(Guid.NewGuid(), 1, "physics", "raw/a", "o1")], at);
        var output = new PendingOutput("o1", Guid.NewGuid(), "prompt", "muon", 1, "physics", 2, "raw/a", "jobs/o1.evt", 10, "00000001", 3, at, null);
        var merged = new MergedFileRecord("merged/m", "prompt", "muon", 10, "00000001", 4, false, at, at);
        var run = new RunDocument(1000, "digest", 8, at);

        var entryBack = BsonSerializer.Deserialize<CatalogEntry>(entry.ToBsonDocument());
        var outputDocument = output.ToBsonDocument();

        Assert.Equal(entry with { Sources = [] }, entryBack with { Sources = [] });
        Assert.Equal(entry.Sources, entryBack.Sources);
        Assert.Equal("o1", outputDocument["_id"].AsString);
        Assert.Equal(BsonNull.Value, outputDocument["mergedName"]);
        Assert.Equal(output, BsonSerializer.Deserialize<PendingOutput>(outputDocument));
        Assert.Equal("merged/m", merged.ToBsonDocument()["_id"].AsString);
        Assert.Equal(merged, BsonSerializer.Deserialize<MergedFileRecord>(merged.ToBsonDocument()));
        Assert.Equal(1000, run.ToBsonDocument()["_id"].AsInt32);
        Assert.Equal(run, BsonSerializer.Deserialize<RunDocument>(run.ToBsonDocument()));
    }

    [Fact]
    public void Should_add_an_output_only_if_it_is_new()
    {
        var output = new PendingOutput("o1", Guid.NewGuid(), "prompt", "muon", 1, "physics", 2, "raw/a", "jobs/o1.evt", 10, "00000001", 3, DateTimeOffset.UnixEpoch, null);

        var update = MongoMergeStore.InsertOnly(output)
            .Render(new RenderArgs<PendingOutput>(BsonSerializer.LookupSerializer<PendingOutput>(), BsonSerializer.SerializerRegistry))
            .AsBsonDocument;

        var fields = Assert.Single(update.Elements);
        Assert.Equal("$setOnInsert", fields.Name);
        Assert.DoesNotContain("_id", fields.Value.AsBsonDocument.Names);
        Assert.Equal(BsonNull.Value, fields.Value["mergedName"]);
        Assert.Equal(10, fields.Value["size"].ToInt64());
    }

    [Fact]
    public void Should_group_run_progress_and_buffers_on_the_stored_field_names()
    {
        var progress = MongoRunLedger.RunProgress("prompt", [1, 2]);

        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "run", new BsonDocument("$in", new BsonArray { 1, 2 }) } }, progress[0]["$match"]);
        Assert.Equal("$run", progress[1]["$group"]["_id"]);
        // A closed file (open: false) counts as past reconstruction.
        Assert.Equal(new BsonDocument("$sum", new BsonDocument("$cond", new BsonArray { "$open", 0, 1 })), progress[1]["$group"]["past"]);
        Assert.Equal(new BsonDocument("mergedName", BsonNull.Value), MongoMergeStore.Buffers[0]["$match"]);
        Assert.Equal("$size", MongoMergeStore.Buffers[1]["$group"]["bytes"]["$sum"]);
    }

    [Fact]
    public void Should_sum_the_outputs_a_runs_files_reported_to_the_ledger_from_its_index()
    {
        var reported = MongoRunLedger.ReportedOutputs("prompt", "muon", 3, 5);

        Assert.Equal(new BsonDocument
        {
            { "campaign", "prompt" },
            { "run", new BsonDocument { { "$gte", 3 }, { "$lte", 5 } } },
            { "outputs.dataset", "muon" },
        }, reported[0]["$match"]);
        Assert.Equal("$outputs.outputs", reported[3]["$group"]["outputs"]["$sum"]);
        Assert.Equal(["campaign", "outputs.dataset", "run"], IndexFields(MongoRunLedger.RunFilesCollection, "campaign_dataset_run"));
        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "open", true } }, Render(MongoRunLedger.OpenFiles("prompt")));
        Assert.Equal(["campaign", "open", "run"], IndexFields(MongoRunLedger.RunFilesCollection, "campaign_open_run"));
    }

    [Fact]
    public void Should_take_a_datasets_queued_files_in_order_and_its_last_written_from_indexes()
    {
        var from = Render(MongoArchiveQueue.From("prompt", "muon", 7));
        var written = Render(MongoArchiveQueue.Written("prompt", "muon"));

        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "dataset", "muon" }, { "sequence", new BsonDocument("$gte", 7L) } }, from);
        Assert.Equal(["campaign", "dataset", "sequence"], IndexFields(MongoArchiveQueue.QueueCollection, "dataset_sequence"));
        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "dataset", "muon" }, { "state", new BsonDocument("$gte", 1) } }, written);
        Assert.Equal(["campaign", "dataset", "state", "sequence"], IndexFields(MongoArchiveQueue.QueueCollection, "dataset_state_sequence"));
        // Merged files not yet archived, for the merger's resend: an equality on false (a negation would scan two index ranges).
        Assert.Equal(new BsonDocument("archived", false), Render(MongoMergeStore.Unarchived));
    }

    [Fact]
    public void Should_drop_only_indexes_that_are_no_longer_made()
    {
        foreach (var collection in StoreConcerns.MongoSchema)
        {
            Assert.All(collection.ObsoleteIndexes ?? [], name => Assert.DoesNotContain(name, collection.Indexes.Select(i => i.Options.Name)));
        }
        Assert.Equal(["pending"], StoreConcerns.MongoCollectionNamed(MongoMergeStore.OutputsCollection).ObsoleteIndexes);
        Assert.Equal(["dataset_archived_created", "dataset_unarchived_order"], StoreConcerns.MongoCollectionNamed(MongoMergeStore.MergedCollection).ObsoleteIndexes);
    }

    [Fact]
    public void Should_create_every_collection_of_every_concern_once()
    {
        var names = StoreConcerns.MongoSchema.Select(c => c.Name).ToList();

        Assert.Contains(MongoFileSagaStore.StateCountsCollection, names);
        Assert.Contains(MongoRunCatalog.AnnouncementsCollection, names);
        Assert.Contains(MongoFlowStore.MoversCollection, names);
        Assert.Equal(names.Count, names.Distinct().Count());
    }

    [Fact]
    public void Should_count_files_per_state_in_a_fixed_shard_with_an_upserted_increment()
    {
        var file = Guid.Parse("0badcafe-0000-4000-8000-000000000001");

        var change = MongoFileSagaStore.StateCountChange("prompt", "Staging", file, -1);
        var update = ((BsonDocumentUpdateDefinition<BsonDocument>)change.Update).Document;
        var filter = ((BsonDocumentFilterDefinition<BsonDocument>)change.Filter).Document;

        Assert.True(change.IsUpsert);
        Assert.Equal(new BsonDocument("files", -1L), update["$inc"]);
        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "state", "Staging" } }, update["$setOnInsert"]);
        Assert.Equal(new BsonDocument { { "c", "prompt" }, { "s", "Staging" }, { "n", MongoFileSagaStore.StateCountShard(file) } }, filter["_id"]);
        // The same file counts in the same shard in every process; files spread over all shards.
        Assert.Equal(MongoFileSagaStore.StateCountShard(file), MongoFileSagaStore.StateCountShard(Guid.Parse(file.ToString())));
        var shards = Enumerable.Range(0, 400).Select(_ => MongoFileSagaStore.StateCountShard(Guid.NewGuid())).ToHashSet();
        Assert.Equal(Enumerable.Range(0, MongoFileSagaStore.StateCountShards).ToHashSet(), shards);
    }

    [Fact]
    public void Should_add_up_shards_into_counts_and_leave_out_states_with_no_files()
    {
        BsonDocument Shard(string campaign, string state, long files) => new() { { "campaign", campaign }, { "state", state }, { "files", files } };

        var counts = MongoFileSagaStore.SumStateCounts([Shard("prompt", "Staging", 2), Shard("prompt", "Staging", 3), Shard("mc", "Archived", 1), Shard("prompt", "Failed", 0), Shard("prompt", "Queued", 1), Shard("prompt", "Queued", -1)]);

        Assert.Equal([new StateCount("mc", "Archived", 1), new StateCount("prompt", "Staging", 5)], counts);
    }

    [Fact]
    public void Should_count_a_bulk_load_with_one_increment_per_campaign_state_and_shard()
    {
        var sagas = Enumerable.Range(0, 1000).Select(i => new FileState { CorrelationId = Guid.NewGuid(), Campaign = i % 2 == 0 ? "a" : "b", CurrentState = "Registered" }).ToList();

        var changes = MongoFileSagaStore.StateCountChanges(sagas);

        Assert.InRange(changes.Count, 2, 2 * MongoFileSagaStore.StateCountShards);
        Assert.Equal(1000L, changes.Sum(c => ((BsonDocumentUpdateDefinition<BsonDocument>)c.Update).Document["$inc"]["files"].ToInt64()));
    }

    [Fact]
    public void Should_keep_a_large_runs_announcement_in_parts_each_well_under_the_document_limit()
    {
        // A run of 100,000 files with long names: about 25 million characters of JSON.
        var json = "[" + string.Join(",", Enumerable.Range(0, 100_000).Select(i => $"{{\"name\":\"raw/run000001/physics/{new string('x', 200)}-{i:D6}.raw\",\"size\":1000000000}}")) + "]";

        var parts = MongoRunCatalog.AnnouncementParts(1, json);

        Assert.True(parts.Count > 1, $"{json.Length} characters in one part");
        Assert.All(parts, p => Assert.True(p.ToBson().Length < 16 * 1024 * 1024 / 2, $"a part of {p.ToBson().Length} bytes"));
        Assert.Equal(Enumerable.Range(0, parts.Count), parts.Select(p => p["part"].AsInt32));
        Assert.All(parts, p => Assert.Equal(1, p["run"].AsInt32));
        Assert.Equal(json, MongoRunCatalog.JoinAnnouncement(parts.Reverse()));
        Assert.Equal(new BsonDocument("run", 1), Render(MongoRunCatalog.AnnouncementOf(1)));
        Assert.Equal(["run", "part"], IndexFields(MongoRunCatalog.AnnouncementsCollection, "run_part"));
    }

    [Fact]
    public void Should_list_runs_without_their_announcements()
    {
        var projection = MongoRunCatalog.RunSummaryProjection
            .Render(new RenderArgs<RunDocument>(BsonSerializer.LookupSerializer<RunDocument>(), BsonSerializer.SerializerRegistry));

        Assert.Equal(new BsonDocument { { "files", 1 }, { "registeredAt", 1 } }, projection);
        var announced = Render(MongoRunCatalog.AnnouncedAfter(7)).ToJson();
        Assert.Contains("\"announcementParts\" : { \"$gt\" : 0 }", announced);
        Assert.Contains("\"_id\" : { \"$gt\" : 7 }", announced);
    }

    [Fact]
    public void Should_write_with_a_majority_that_times_out_instead_of_hanging()
    {
        var settings = MongoStoreContext.ClientSettings("mongodb://127.0.0.1:27017/?replicaSet=rs0");
        var configured = MongoStoreContext.ClientSettings("mongodb://127.0.0.1:27017/?replicaSet=rs0", TimeSpan.FromSeconds(3));

        Assert.Equal((WriteConcern.WMajority.W, (bool?)true, (TimeSpan?)MongoStoreContext.DefaultWriteTimeout), (settings.WriteConcern.W, settings.WriteConcern.Journal, settings.WriteConcern.WTimeout));
        Assert.Equal(TimeSpan.FromSeconds(3), configured.WriteConcern.WTimeout);
        Assert.Equal(ReadConcern.Majority, settings.ReadConcern);
    }

    [Theory]
    [InlineData("{ setName: 'rs0' }", "7.0.12", null)]
    [InlineData("{ msg: 'isdbgrid' }", "6.0.3", null)]
    [InlineData("{ isWritablePrimary: true }", "7.0.12", "standalone")]
    [InlineData("{ setName: 'rs0' }", "4.2.24", "older than 4.4")]
    [InlineData("{ setName: 'rs0' }", "4.4.0-rc1", null)]
    public void Should_refuse_a_standalone_or_old_server_with_what_to_do(string hello, string version, string? problem)
    {
        var found = MongoStoreContext.SupportProblem(BsonDocument.Parse(hello), new BsonDocument("version", version));

        if (problem is null)
        {
            Assert.Null(found);
        }
        else
        {
            Assert.Contains(problem, found);
        }
    }
}
