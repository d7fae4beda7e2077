using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Production.Flow;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed class When_an_operator_changes_flow_control
{
    private static JsonElement Area(JsonElement flow, string area) =>
        flow.GetProperty("areas").EnumerateArray().Single(a => a.GetProperty("area").GetString() == area);

    [Fact]
    public async Task Should_show_quotas_usage_and_movers_and_apply_a_new_quota_everywhere()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Flow:Areas:cache:QuotaBytes"] = "1000000",
            ["Pipeline:Flow:Movers"] = "3",
        });
        var viewer = pipeline.Client(PipelineUnderTest.ViewerKey);

        var flow = await viewer.GetFromJsonAsync<JsonElement>("/api/flow");
        Assert.Equal(1_000_000, Area(flow, "cache").GetProperty("quotaBytes").GetInt64());
        Assert.Equal(900_000, Area(flow, "cache").GetProperty("highWaterBytes").GetInt64());
        Assert.Equal(0, Area(flow, "output").GetProperty("quotaBytes").GetInt64());
        Assert.Equal(3, flow.GetProperty("movers").GetProperty("limit").GetInt32());
        Assert.Contains(flow.GetProperty("datasets").EnumerateArray(), d => d.GetProperty("dataset").GetString() == "muon"
            && d.GetProperty("ordering").GetString() == "strict" && d.GetProperty("copies")[0].GetString() == "archive");

        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PutAsJsonAsync("/api/flow/movers", new { limit = 1 })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.PutAsJsonAsync("/api/flow/movers", new { limit = 0 })).StatusCode);
        var invalid = await pipeline.Http.PutAsJsonAsync("/api/flow/areas/cache", new { quotaBytes = 1000, highWater = 0.5, lowWater = 0.8 });
        Assert.Equal(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.Equal("application/problem+json", invalid.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.PutAsJsonAsync("/api/flow/areas/archive", new { quotaBytes = 1000 })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.PutAsJsonAsync("/api/flow/datasets/nosuch", new { ordering = "relaxed" })).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.PutAsJsonAsync("/api/flow/datasets/muon", new { ordering = "sideways" })).StatusCode);

        var set = await pipeline.Http.PutAsJsonAsync("/api/flow/areas/output", new { quotaBytes = 5_000_000, highWater = 0.8, lowWater = 0.5 });
        Assert.Equal(HttpStatusCode.Accepted, set.StatusCode);
        var output = Area(await set.Content.ReadFromJsonAsync<JsonElement>(), "output");
        Assert.Equal((5_000_000L, 4_000_000L, 2_500_000L, "test-operator"),
            (output.GetProperty("quotaBytes").GetInt64(), output.GetProperty("highWaterBytes").GetInt64(), output.GetProperty("lowWaterBytes").GetInt64(), output.GetProperty("setBy").GetString()));
        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.PutAsJsonAsync("/api/flow/movers", new { limit = 1 })).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.PutAsJsonAsync("/api/flow/datasets/muon", new { ordering = "relaxed" })).StatusCode);

        // Every instance reads the settings from the store: this one too, within a refresh.
        var control = pipeline.Services.GetRequiredService<FlowControl>();
        await Eventually.Until(() => Task.FromResult(control.MoversLimit), limit => limit == 1, TimeSpan.FromSeconds(30), "the movers setting to arrive");
        Assert.Equal(5_000_000, control.QuotaOf("output").QuotaBytes);
        Assert.Equal(MergeOrdering.Relaxed, control.OrderingOf("muon"));

        // Production still flows with one mover, and the ledger shows every area empty again afterwards.
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 30));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);
        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        // "Final" is not "everything released": the merger gives the unmerged area's room back once it hears the outputs were archived.
        var after = await Eventually.Until(() => viewer.GetFromJsonAsync<JsonElement>("/api/flow"),
            flow => flow.GetProperty("areas").EnumerateArray().All(a => a.GetProperty("usedBytes").GetInt64() == 0),
            TimeSpan.FromMinutes(1), "every area's ledger to be empty", flow => flow.GetProperty("areas").ToString());
        Assert.All(after.GetProperty("areas").EnumerateArray(), a => Assert.Equal(0, a.GetProperty("usedBytes").GetInt64()));
        Assert.True(Area(after, "cache").GetProperty("peakBytes").GetInt64() > 0);

        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.DeleteAsync("/api/flow/areas/output")).StatusCode);
        Assert.Equal(0, Area(await viewer.GetFromJsonAsync<JsonElement>("/api/flow"), "output").GetProperty("quotaBytes").GetInt64());
    }
}
