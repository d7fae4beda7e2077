using Microsoft.Extensions.DependencyInjection;
using System.Globalization;
using System.Text.RegularExpressions;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

/// <summary>
/// A meter is found by name across the whole process, so a pipeline's exporter would also count what other
/// tests' pipelines do at the same time: this test runs alone.
/// </summary>
[CollectionDefinition(nameof(When_prometheus_scrapes_the_pipeline), DisableParallelization = true)]
public sealed class AloneCollection;

[Collection(nameof(When_prometheus_scrapes_the_pipeline))]
public sealed partial class When_prometheus_scrapes_the_pipeline
{
    /// <summary>The value of one series of the Prometheus text, or null; the labels must all be on the line.</summary>
    private static double? Value(string text, string metric, params string[] labels)
    {
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(metric + "{", StringComparison.Ordinal) && labels.All(l => line.Contains(l, StringComparison.Ordinal)))
            {
                return double.Parse(SeriesValue().Match(line).Groups[1].Value, CultureInfo.InvariantCulture);
            }
        }
        return null;
    }

    private static string Backlogs(string text) =>
        string.Join('\n', text.Split('\n').Where(l => l.StartsWith("pipeline_backlog", StringComparison.Ordinal) || l.StartsWith("pipeline_files", StringComparison.Ordinal)));

    [GeneratedRegex(@"\}\s+([0-9.eE+-]+)")]
    private static partial Regex SeriesValue();

    [Fact]
    public async Task Should_count_what_every_stage_did()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);
        var rawBytes = runs.SelectMany(r => r.Files!).Sum(f => f.Size);
        using var anonymous = pipeline.Client(null);

        // The exporter caches a scrape for a moment: wait until it shows the finished flow.
        var text = await Eventually.Until(() => anonymous.GetStringAsync("/metrics"),
            t => Value(t, "pipeline_files", "state=\"Archived\"") == 4, TimeSpan.FromSeconds(30), "the metrics of four archived files");

        Assert.Equal(4, Value(text, "pipeline_stage_files_total", "stage=\"staging\""));
        Assert.Equal(rawBytes, Value(text, "pipeline_stage_bytes_total", "stage=\"staging\""));
        Assert.Equal(4, Value(text, "pipeline_stage_files_total", "stage=\"reconstruction\""));
        Assert.Equal(4, Value(text, "pipeline_stage_files_total", "stage=\"collection\""));
        Assert.True(Value(text, "pipeline_stage_files_total", "stage=\"archive\"") >= 1);
        Assert.Equal(Value(text, "pipeline_stage_files_total", "stage=\"merge\""), Value(text, "pipeline_stage_files_total", "stage=\"archive\""));
        Assert.Equal(4, Value(text, "pipeline_stage_duration_seconds_count", "stage=\"staging\""));
        Assert.Equal(0, Value(text, "pipeline_stage_busy", "stage=\"reconstruction\"") ?? 0);
        Assert.Contains("# TYPE pipeline_stage_duration_seconds histogram", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_export_every_series_from_the_start_at_zero_and_the_files_waiting_for_each_scalable_stage()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        using var anonymous = pipeline.Client(null);
        string[] stages = ["staging", "reconstruction", "merge", "archive"];
        var campaign = $"campaign=\"{pipeline.Campaign.Name}\"";

        // Before any file: every stage's series exists, at 0, so that a rate, an alert or an autoscaler reads 0, not "absent".
        var start = await Eventually.Until(() => anonymous.GetStringAsync("/metrics"), t => stages.All(s => Value(t, "pipeline_backlog", $"stage=\"{s}\"", campaign) == 0)
                && Value(t, "pipeline_files", campaign, "state=\"Archived\"") == 0,
            TimeSpan.FromSeconds(30), "every stage's backlog at 0", Backlogs);
        foreach (var stage in PipelineMetrics.Stages)
        {
            foreach (var counter in new[] { "pipeline_stage_files_total", "pipeline_stage_bytes_total", "pipeline_stage_failures_total" })
            {
                Assert.True(Value(start, counter, $"stage=\"{stage}\"") == 0, $"{counter} of {stage} is not at 0 from the start");
            }
        }
        Assert.Equal(0, Value(start, "pipeline_stage_busy", "stage=\"reconstruction\""));
        Assert.Equal(0, Value(start, "pipeline_stage_busy", "stage=\"archive\""));
        Assert.All(FileStates.All, state => Assert.Equal(0, Value(start, "pipeline_files", campaign, $"state=\"{state}\"")));

        // Files that reach reconstruction while it is paused wait there: its backlog is theirs.
        Assert.Equal(System.Net.HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/pause", null)).StatusCode);
        var pause = pipeline.Services.GetRequiredService<Pipeline.Production.Control.PauseState>();
        await Eventually.Until(() => Task.FromResult(pause.IsPaused("reconstruction")), p => p, TimeSpan.FromSeconds(30), "the pause to reach this instance");
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);
        await Eventually.Until(() => anonymous.GetStringAsync("/metrics"),
            t => Value(t, "pipeline_backlog", "stage=\"reconstruction\"", campaign) == 4 && Value(t, "pipeline_backlog", "stage=\"staging\"", campaign) == 0,
            TimeSpan.FromSeconds(60), "four files waiting for reconstruction", Backlogs);

        Assert.Equal(System.Net.HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/resume", null)).StatusCode);
        await pipeline.WaitForFinalAsync(4);
        await Eventually.Until(() => anonymous.GetStringAsync("/metrics"), t => stages.All(s => Value(t, "pipeline_backlog", $"stage=\"{s}\"", campaign) == 0),
            TimeSpan.FromSeconds(30), "every stage's backlog back at 0", Backlogs);
    }
}
