using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Api;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Campaigns;

/// <summary>Campaigns on real RabbitMQ, with the sample release run as a process unless said otherwise.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class When_campaigns_run(RabbitMqBroker broker)
{
    private static readonly Dictionary<string, string?> OnlyApiCampaigns = new() { ["Pipeline:Campaign:Enabled"] = "false" };

    public static ReleaseSpec SampleRelease(string version) => new()
    {
        Version = version,
        Executable = "{appdir}/Pipeline.SampleExperiment",
        Arguments = [.. ReleaseOptions.SampleArguments],
    };

    public static CampaignDefinition Reprocessing(string name, int priority = 1, string version = "sample-2.0") => new()
    {
        Name = name,
        Kind = CampaignKinds.Reprocessing,
        Release = SampleRelease(version),
        Datasets = CampaignOptions.SampleDatasets.ToDictionary(),
        MergeTargetBytes = 1L << 20,
        Priority = priority,
    };

    private static async Task<JsonElement> CreateAsync(PipelineUnderTest pipeline, CampaignDefinition definition)
    {
        var response = await pipeline.Http.PostAsJsonAsync("/api/campaigns", definition);
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task<IReadOnlyList<FileState>> FilesOfAsync(PipelineUnderTest pipeline, string campaign) =>
        [.. (await pipeline.AllFilesAsync()).Where(f => f.Campaign == campaign)];

    [Fact]
    public async Task Should_reprocess_exactly_the_raw_files_behind_stale_outputs_into_separate_outputs_once_per_campaign()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync());
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 2, EventsPerFile: 100));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(8);
        Assert.True((await pipeline.AuditAsync(runs)).Complete);

        // Nothing is stale until the release the prompt campaign used is superseded.
        Assert.Empty(await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/stale") ?? []);
        var superseded = await pipeline.Http.PostAsJsonAsync("/api/releases/sample-1.0/supersede", new { by = "sample-2.0" });
        Assert.Equal(HttpStatusCode.Accepted, superseded.StatusCode);
        var stale = Assert.Single(await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/stale") ?? []);
        Assert.Equal(("prompt", 8), (stale.GetProperty("campaign").GetString(), stale.GetProperty("rawFiles").GetInt32()));
        Assert.Contains("release sample-1.0 superseded by sample-2.0", stale.GetProperty("reason").GetString(), StringComparison.Ordinal);

        var reprocess = await pipeline.Http.PostAsJsonAsync("/api/stale/reprocess", new ReprocessStaleRequest("prompt-v2", "prompt", SampleRelease("sample-2.0"), null, null));
        Assert.True(reprocess.StatusCode == HttpStatusCode.Created, await reprocess.Content.ReadAsStringAsync());
        var created = await reprocess.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(("reprocessing", "sample-2.0", 8L), (created.GetProperty("kind").GetString(), created.GetProperty("release").GetString(),
            created.GetProperty("forecast").GetProperty("files").GetInt64()));

        await pipeline.WaitForFinalAsync(16);
        var second = await FilesOfAsync(pipeline, "prompt-v2");
        // Each raw file once per campaign: the same names, each once in each campaign.
        Assert.Equal(runs.SelectMany(r => r.Files!).Select(f => f.Name).Order(), second.Select(f => f.LogicalName).Order());
        Assert.Equal((await FilesOfAsync(pipeline, "prompt")).Select(f => f.LogicalName).Order(), second.Select(f => f.LogicalName).Order());
        Assert.All(second, f => Assert.Equal(("Archived", 1), (f.CurrentState, f.Attempt)));
        var audit = await pipeline.AuditAsync(runs, "prompt-v2", CampaignOptions.SampleDatasets);
        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));

        // The outputs are kept apart: every merged file belongs to one campaign, under that campaign's folder.
        var merged = await pipeline.Services.GetRequiredService<ICatalog>().ListAsync(CatalogEntry.Merged, null, CancellationToken.None);
        Assert.All(merged, m => Assert.StartsWith($"merged/{m.Campaign}/", m.Name, StringComparison.Ordinal));
        Assert.Equal(merged.Where(m => m.Campaign == "prompt").Sum(m => m.Events), merged.Where(m => m.Campaign == "prompt-v2").Sum(m => m.Events));

        var view = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/campaigns/prompt-v2");
        var forecast = view.GetProperty("forecast");
        Assert.Equal((8L, 8L, 0L), (forecast.GetProperty("files").GetInt64(), forecast.GetProperty("done").GetInt64(), forecast.GetProperty("remaining").GetInt64()));
        Assert.True(view.GetProperty("feed").GetProperty("complete").GetBoolean());
    }

    [Fact]
    public async Task Should_hold_a_runs_files_until_their_calibration_is_registered()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), OnlyApiCampaigns);
        await CreateAsync(pipeline, new CampaignDefinition
        {
            Name = "express-calibrated",
            Kind = CampaignKinds.Prompt,
            Release = SampleRelease("sample-1.0"),
            CalibrationTag = "align-7",
            RequireCalibration = true,
            Datasets = CampaignOptions.SampleDatasets.ToDictionary(),
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FirstRun: 1000, FilesPerStream: 1, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);
        var held = await Eventually.Until(pipeline.AllFilesAsync, f => f.Count == 4 && f.All(x => x.CurrentState == FileStates.AwaitingCalibration),
            TimeSpan.FromMinutes(1), "four files awaiting calibration");
        Assert.All(held, f => Assert.Equal((0, "align-7"), (f.Attempt, f.AwaitedCalibration)));

        var registered = await pipeline.Http.PostAsJsonAsync("/api/calibrations", new { tag = "align-7", runFrom = 1001, runTo = 1001 });
        Assert.Equal(HttpStatusCode.Accepted, registered.StatusCode);
        await Eventually.Until(pipeline.AllFilesAsync, f => f.Where(x => x.Run == 1001).All(x => FileStates.PastReconstruction.Contains(x.CurrentState)),
            TimeSpan.FromMinutes(2), "run 1001 reconstructed");
        // Run 1000 has no calibration yet: its files have not started, not even staging.
        Assert.All((await pipeline.AllFilesAsync()).Where(f => f.Run == 1000), f => Assert.Equal((FileStates.AwaitingCalibration, 0), (f.CurrentState, f.Attempt)));

        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.PostAsJsonAsync("/api/calibrations", new { tag = "align-7", runFrom = 900, runTo = 1000 })).StatusCode);
        await pipeline.WaitForFinalAsync(4);
        Assert.True((await pipeline.AuditAsync(runs, "express-calibrated", CampaignOptions.SampleDatasets)).Complete);
        var started = (await pipeline.AllFilesAsync()).Where(f => f.Run == 1000).ToList();
        Assert.All(started, f => Assert.Contains(f.History, h => h.Detail == "calibration registered for run 1000"));
        var calibrations = await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/calibrations?tag=align-7");
        Assert.Equal(2, calibrations!.Length);
    }

    [Fact]
    public async Task Should_share_reconstruction_between_busy_campaigns_by_their_priorities()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), OnlyApiCampaigns);
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 4, FilesPerStream: 10, EventsPerFile: 20, PayloadBytes: 128));
        await pipeline.IngestAsync(runs);
        await CreateAsync(pipeline, Reprocessing("high", priority: 3));
        await CreateAsync(pipeline, Reprocessing("low", priority: 1));
        await pipeline.WaitForFinalAsync(160, TimeSpan.FromMinutes(6));

        // Reconstructions in the order they finished, from the moment both campaigns had work.
        var finished = (await pipeline.AllFilesAsync())
            .Select(f => (f.Campaign, At: f.History.First(h => h.State == "Reconstructed").At))
            .OrderBy(f => f.At)
            .ToList();
        var window = finished.SkipWhile(f => f.Campaign != "low").Take(60).ToList();
        Assert.Equal(60, window.Count);
        var highShare = window.Count(f => f.Campaign == "high") / (double)window.Count;
        Assert.InRange(highShare, 0.65, 0.85);
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal("Archived", f.CurrentState));
    }

    [Fact]
    public async Task Should_register_thousands_of_catalogued_files_in_bounded_batches()
    {
        const int window = 200;
        var settings = new Dictionary<string, string?>(OnlyApiCampaigns)
        {
            ["Pipeline:Orchestrator:FeedWindowFiles"] = window.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Pipeline:Orchestrator:FeedBatchFiles"] = "50",
            ["Pipeline:Orchestrator:FeedIntervalSeconds"] = "0.2",
            ["Pipeline:Reconstruction:Slots"] = "4",
        };
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), settings,
            services => services.AddSingleton<IReleaseRunner, InProcessSampleRelease>());
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 10, Streams: ["physics"], FilesPerStream: 200, EventsPerFile: 2, PayloadBytes: 64));
        await pipeline.IngestAsync(runs);
        Assert.Empty(await pipeline.AllFilesAsync());

        await CreateAsync(pipeline, Reprocessing("reprocess-all"));
        long mostUnfinished = 0;
        var counts = await Eventually.Until(async () =>
            {
                var now = await pipeline.Sagas.CountByStateAsync(CancellationToken.None);
                mostUnfinished = Math.Max(mostUnfinished, now.Where(c => FileStates.BeforeReconstructed.Contains(c.State)).Sum(c => c.Files));
                return now;
            },
            now => now.Where(c => FileStates.Final.Contains(c.State)).Sum(c => c.Files) == 2000,
            TimeSpan.FromMinutes(8), "2,000 files final", now => string.Join(", ", now.Select(c => $"{c.State}={c.Files}")));

        Assert.Equal(2000, counts.Where(c => c.State == "Archived").Sum(c => c.Files));
        Assert.InRange(mostUnfinished, 1, window);
        var campaign = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/campaigns/reprocess-all");
        var feed = campaign.GetProperty("feed");
        Assert.Equal((2000L, true), (feed.GetProperty("registered").GetInt64(), feed.GetProperty("complete").GetBoolean()));
        Assert.Equal(2000, (await pipeline.AllFilesAsync()).Select(f => f.LogicalName).Distinct().Count());
    }

    [Fact]
    public async Task Should_generate_monte_carlo_run_by_run_at_the_set_multiple_of_each_runs_events()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), OnlyApiCampaigns);
        var generated = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FirstRun: 2000, Streams: ["physics"], FilesPerStream: 2, EventsPerFile: 30));
        var runs = generated.Select((r, i) => r with { Conditions = new Dictionary<string, string> { ["beamEnergy"] = i == 0 ? "5.29" : "5.30" } }).ToList();
        await pipeline.IngestAsync(runs);
        await CreateAsync(pipeline, new CampaignDefinition
        {
            Name = "mc-bbbar",
            Kind = CampaignKinds.MonteCarlo,
            EventsMultiple = 3,
            Release = new ReleaseSpec
            {
                Version = "sim-1.0",
                Executable = "{appdir}/Pipeline.SampleExperiment",
                Arguments = ["simulate", "--run", "{run}", "--events", "{events}", "--seed", "{seed}", "--conditions", "{conditions}", "--outdir", "{outdir}", "--datasets", "{datasets}"],
            },
            Datasets = new Dictionary<string, uint> { ["mc-all"] = 0xFF },
            MergeTargetBytes = 1L << 20,
        });
        await pipeline.WaitForFinalAsync(4);

        var files = await FilesOfAsync(pipeline, "mc-bbbar");
        Assert.All(files, f => Assert.Equal(("Archived", true, 1), (f.CurrentState, f.Simulated, f.Attempt)));
        Assert.All(files, f => Assert.DoesNotContain(f.History, h => h.State == "Staging"));
        foreach (var run in runs)
        {
            var produced = files.Where(f => f.Run == run.Run).SelectMany(f => f.Outputs).Where(o => o.Output.Dataset == "mc-all").Sum(o => o.Output.Events);
            Assert.Equal(3 * run.Files!.Sum(f => f.Events), produced);
        }
        var merged = await pipeline.Services.GetRequiredService<ICatalog>().ListAsync(CatalogEntry.Merged, "mc-bbbar", CancellationToken.None);
        Assert.Equal(3 * runs.Sum(r => r.Files!.Sum(f => f.Events)), merged.Sum(m => m.Events));
    }

    [Fact]
    public async Task Should_cancel_a_campaign_ending_files_not_started_and_finishing_those_in_flight()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), OnlyApiCampaigns);
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 4, EventsPerFile: 40));
        await pipeline.IngestAsync(runs);
        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/pause", null)).StatusCode);
        await CreateAsync(pipeline, Reprocessing("doomed"));
        // Four files hold the slots dispatched before the pause took their worker; four wait staged.
        await Eventually.Until(() => pipeline.Sagas.CountByStateAsync(CancellationToken.None),
            c => c.Where(s => s.State == "Queued").Sum(s => s.Files) == 4 && c.Where(s => s.State == "Staged").Sum(s => s.Files) == 4,
            TimeSpan.FromMinutes(1), "four queued and four staged files", c => string.Join(", ", c.Select(s => $"{s.State}={s.Files}")));

        var cancel = await pipeline.Http.PostAsync("/api/campaigns/doomed/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        Assert.Equal(4, (await cancel.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("filesCancelled").GetInt32());
        Assert.Equal(HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/resume", null)).StatusCode);

        var counts = await pipeline.WaitForFinalAsync(8);
        Assert.Equal((4L, 4L), (counts.Where(c => c.State == "Cancelled").Sum(c => c.Files), counts.Where(c => c.State == "Archived").Sum(c => c.Files)));
        // The cancelled files' staged copies are given back; nothing is left in the cache.
        await Eventually.Until(() => Task.FromResult(Directory.EnumerateFiles(pipeline.Areas.Cache.RootPath, "*", SearchOption.AllDirectories).Count()),
            n => n == 0, TimeSpan.FromMinutes(1), "an empty cache");
        var view = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/campaigns/doomed");
        Assert.Equal("cancelled", view.GetProperty("status").GetString());
        var again = await pipeline.Http.PostAsync("/api/campaigns/doomed/cancel", null);
        Assert.Equal(0, (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("filesCancelled").GetInt32());
    }

    [Fact]
    public async Task Should_validate_definitions_and_answer_repeats_conflicts_and_unknown_campaigns()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync());
        var empty = await pipeline.Http.PostAsJsonAsync("/api/campaigns", new { });
        Assert.Equal(HttpStatusCode.BadRequest, empty.StatusCode);
        var problem = await empty.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(["datasets", "kind", "name", "release"], problem.GetProperty("errors").EnumerateObject().Select(e => e.Name).Order(StringComparer.Ordinal));

        var nothingSelected = await pipeline.Http.PostAsJsonAsync("/api/campaigns", Reprocessing("nothing-yet"));
        Assert.Equal(HttpStatusCode.BadRequest, nothingSelected.StatusCode);

        var prompt = Reprocessing("prompt-b") with { Kind = CampaignKinds.Prompt };
        await CreateAsync(pipeline, prompt);
        Assert.Equal(HttpStatusCode.OK, (await pipeline.Http.PostAsJsonAsync("/api/campaigns", prompt with { Priority = 9 })).StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await pipeline.Http.PostAsJsonAsync("/api/campaigns", prompt with { Release = SampleRelease("sample-9") })).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await pipeline.Client(PipelineUnderTest.ViewerKey).PostAsJsonAsync("/api/campaigns", prompt)).StatusCode);

        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.PutAsJsonAsync("/api/campaigns/prompt-b/priority", new { priority = 0 })).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.PutAsJsonAsync("/api/campaigns/nope/priority", new { priority = 2 })).StatusCode);
        var changed = await pipeline.Http.PutAsJsonAsync("/api/campaigns/prompt-b/priority", new { priority = 4 });
        Assert.Equal(4, (await changed.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("priority").GetInt32());
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.GetAsync("/api/campaigns/nope")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.PostAsync("/api/campaigns/nope/cancel", null)).StatusCode);

        // A new run goes to every active prompt campaign that selects it: the configured one and the new one.
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 20));
        var accepted = await pipeline.Http.PostAsJsonAsync("/api/runs", runs[0]);
        Assert.Equal(["prompt", "prompt-b"], (await accepted.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("campaigns").EnumerateArray().Select(c => c.GetString()));
        await pipeline.WaitForFinalAsync(4);
        var listed = await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/campaigns");
        Assert.Equal(["prompt", "prompt-b"], listed!.Select(c => c.GetProperty("campaign").GetString()));
    }
}
