using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Bson.Serialization.Serializers;
using MongoDB.Driver;
using Pipeline.Contracts;
using Pipeline.Infrastructure.State;
using Pipeline.Infrastructure.State.Mongo;

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

    private static string[] IndexFields(string collection, string name) =>
        MongoQueries.Indexes[collection]
            .Single(index => index.Options.Name == name)
            .Keys.Render(new RenderArgs<BsonDocument>(BsonDocumentSerializer.Instance, BsonSerializer.SerializerRegistry))
            .Names.ToArray();

    private static IEnumerable<string[]> AllIndexFields(string collection) =>
        MongoQueries.Indexes[collection].Select(index => IndexFields(collection, index.Options.Name));

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

        var filter = Render(MongoQueries.Files(query));

        var equalities = filter.Names.Where(n => n is "campaign" or "state" or "stream").ToHashSet();
        Assert.Equal(new[] { campaign is null ? null : "campaign", state is null ? null : "state", stream is null ? null : "stream" }.OfType<string>().ToHashSet(), equalities);
        // An index that starts with exactly the equality fields and goes on with (run, name) answers the page
        // in order, without a sort in memory, and the cursor's range runs on its tail.
        Assert.Contains(AllIndexFields(MongoPipelineStore.FileSagas), fields =>
            fields.Length == equalities.Count + 2
            && fields.Take(equalities.Count).ToHashSet().SetEquals(equalities)
            && fields[^2..].SequenceEqual(["run", "name"]));
        Assert.Equal(new BsonDocument { { "run", 1 }, { "name", 1 } }, Render(MongoQueries.FileOrder));
        Assert.Contains("$or", filter.ToJson());
    }

    [Fact]
    public void Should_find_files_by_an_output_dataset_and_a_failure_signature()
    {
        var filter = Render(MongoQueries.Files(new FileQuery(Dataset: "muon", FailureSignature: "staging: tape error")));

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

        var filter = Render(MongoQueries.SagaVersion(id, 7));

        Assert.Equal(new BsonDocument { { "_id", new BsonBinaryData(id, GuidRepresentation.Standard) }, { "version", 7 } }, filter);
    }

    [Fact]
    public void Should_look_for_stalled_files_among_unfinished_ones_on_indexed_fields()
    {
        var now = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

        var filter = Render(MongoQueries.Stalled(now, now.AddHours(-1)));

        Assert.Equal(new BsonArray { "Archived", "Cancelled", "Failed" }, new BsonArray(filter["state"]["$nin"].AsBsonArray.OrderBy(v => v.AsString)));
        var branches = filter["$or"].AsBsonArray.Select(b => b.AsBsonDocument).ToArray();
        Assert.Equal(new BsonDateTime(now.UtcDateTime), branches[0]["deadline"]["$lt"]);
        Assert.Equal(new BsonDateTime(now.AddHours(-1).UtcDateTime), branches[1]["updatedAt"]["$lt"]);
        Assert.Equal(["deadline"], IndexFields(MongoPipelineStore.FileSagas, "deadline"));
        Assert.Equal(["updatedAt"], IndexFields(MongoPipelineStore.FileSagas, "updated"));
        Assert.Equal("deadline", Assert.Single(Render(MongoQueries.Stalled(now, null)).Names.Except(["state"])));
    }

    [Fact]
    public void Should_take_pending_outputs_in_merge_order_from_one_index()
    {
        var filter = Render(MongoQueries.Pending("prompt", "muon"));
        var order = Render(MongoQueries.PendingOrder);

        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "dataset", "muon" }, { "mergedName", BsonNull.Value } }, filter);
        Assert.Equal(["run", "section", "stream", "_id"], order.Names);
        Assert.Equal([.. filter.Names, .. order.Names.Take(3)], IndexFields(MongoPipelineStore.MergeOutputs, "pending"));
    }

    [Fact]
    public void Should_keep_catalog_entries_unique_by_name_and_area()
    {
        var index = MongoQueries.Indexes[MongoPipelineStore.Catalog].Single(i => i.Options.Name == "name_area");

        Assert.True(index.Options.Unique);
        Assert.Equal(["name", "area"], IndexFields(MongoPipelineStore.Catalog, "name_area"));
        Assert.Equal(new BsonDocument { { "kind", "merged" }, { "campaign", "prompt" } }, Render(MongoQueries.CatalogOfKind("merged", "prompt")));
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

        var update = MongoQueries.InsertOnly(output)
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
        var progress = MongoQueries.RunProgress("prompt", [1, 2]);

        Assert.Equal(new BsonDocument { { "campaign", "prompt" }, { "run", new BsonDocument("$in", new BsonArray { 1, 2 }) } }, progress[0]["$match"]);
        Assert.Equal("$run", progress[1]["$group"]["_id"]);
        Assert.Contains("Reconstructed", progress[1]["$group"]["past"].ToJson());
        Assert.Equal(new BsonDocument("mergedName", BsonNull.Value), MongoQueries.Buffers[0]["$match"]);
        Assert.Equal("$size", MongoQueries.Buffers[1]["$group"]["bytes"]["$sum"]);
    }
}
