using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Production.Control;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed class When_an_operator_pauses_a_stage
{
    [Fact]
    public async Task Should_hold_its_work_until_resumed_and_then_finish_every_file()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var pause = pipeline.Services.GetRequiredService<PauseState>();

        var paused = await pipeline.Http.PostAsync("/api/stages/reconstruction/pause", null);
        Assert.Equal(HttpStatusCode.Accepted, paused.StatusCode);
        Assert.Equal("test-operator", (await paused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("by").GetString());
        await Eventually.Until(() => Task.FromResult(pause.IsPaused("reconstruction")), p => p, TimeSpan.FromSeconds(30), "the pause to reach this instance");

        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 40));
        await pipeline.IngestAsync(runs);
        // Every file is staged, and its reconstruction request is held back rather than run.
        await Eventually.Until(pipeline.AllFilesAsync, files => files.Count == 4 && files.All(f => f.CurrentState == "Queued"), TimeSpan.FromMinutes(1), "four files queued for reconstruction");
        await Eventually.Until(() => Task.FromResult(pause.Holding), holding => holding >= 1, TimeSpan.FromSeconds(30), "held reconstruction requests");
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal("Queued", f.CurrentState));
        var stages = await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/stages");
        Assert.True(stages!.Single(s => s.GetProperty("stage").GetString() == "reconstruction").GetProperty("paused").GetBoolean());
        Assert.False(stages!.Single(s => s.GetProperty("stage").GetString() == "stager").GetProperty("paused").GetBoolean());

        Assert.Equal(HttpStatusCode.Forbidden, (await pipeline.Client(PipelineUnderTest.ViewerKey).PostAsync("/api/stages/reconstruction/resume", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.PostAsync("/api/stages/orchestrator/pause", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/resume", null)).StatusCode);

        await pipeline.WaitForFinalAsync(4);
        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        Assert.Equal(0, pause.Holding);
    }
}

public sealed class When_an_operator_pauses_a_campaign
{
    [Fact]
    public async Task Should_issue_no_new_step_for_its_files_until_resumed_and_count_no_stall()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var pause = pipeline.Services.GetRequiredService<PauseState>();

        var paused = await pipeline.Http.PostAsync("/api/campaigns/prompt/pause", null);
        Assert.Equal(HttpStatusCode.Accepted, paused.StatusCode);
        var pausedBy = await paused.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(("prompt", true), (pausedBy.GetProperty("campaign").GetString(), pausedBy.GetProperty("paused").GetBoolean()));
        await Eventually.Until(() => Task.FromResult(pause.IsCampaignPaused("prompt")), p => p, TimeSpan.FromSeconds(30), "the pause to reach this instance");
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 40));
        await pipeline.IngestAsync(runs);

        // Registered, and held before stage-in: no attempt was made.
        var held = await Eventually.Until(pipeline.AllFilesAsync, files => files.Count == 4 && files.All(f => f.Held), TimeSpan.FromMinutes(1), "four held files");
        Assert.All(held, f => Assert.Equal(0, f.Attempt));
        Assert.All(held, f => Assert.Contains(f.History, h => h.Detail == "held: campaign prompt is paused"));
        var campaigns = await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/campaigns");
        Assert.True(campaigns!.Single(c => c.GetProperty("campaign").GetString() == "prompt").GetProperty("paused").GetBoolean());
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.PostAsync("/api/campaigns/bad%20name/pause", null)).StatusCode);

        var resumed = await pipeline.Http.PostAsync("/api/campaigns/prompt/resume", null);
        Assert.Equal(HttpStatusCode.Accepted, resumed.StatusCode);
        Assert.False((await resumed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("paused").GetBoolean());

        await pipeline.WaitForFinalAsync(4);
        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal((0, 1, false), (f.Stalls, f.Attempt, f.Held)));
    }
}
