using System.Text.Json;
using System.Text.RegularExpressions;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Deployment;

/// <summary>
/// The Prometheus alert rules and the Grafana dashboard in compose/: accepted by Debian's promtool, firing when they
/// should (promtool's own rule tests), and reading only series the pipeline exports.
/// </summary>
[Collection(nameof(Api.When_prometheus_scrapes_the_pipeline))]
public sealed partial class When_operators_watch_the_pipeline_in_prometheus_and_grafana
{
    private static readonly string Prometheus = Path.Combine(Platform.RepositoryRoot, "compose", "prometheus");
    private static readonly string Dashboard = Path.Combine(Platform.RepositoryRoot, "compose", "grafana", "pipeline-dashboard.json");

    private static async Task<(int ExitCode, string Output)> PromtoolAsync(params string[] arguments)
    {
        var run = await Tool.RunAsync("promtool", arguments);
        return (run.ExitCode, run.Printed);
    }

    /// <summary>Every panel's queries, with Grafana's variables given values Prometheus accepts.</summary>
    private static IReadOnlyList<string> DashboardQueries()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Dashboard));
        return [.. dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .Select(t => t.GetProperty("expr").GetString()!.Replace("$__rate_interval", "5m", StringComparison.Ordinal).Replace("$campaign", ".*", StringComparison.Ordinal))];
    }

    [SkippableFact]
    public async Task Should_ship_rules_and_queries_promtool_accepts_and_rules_that_fire_when_they_should()
    {
        Skip.If(Platform.Which("promtool") is null, "promtool is not installed: make test installs it from Debian's prometheus package");

        var config = await PromtoolAsync("check", "config", Path.Combine(Prometheus, "prometheus.yml"));
        Assert.True(config.ExitCode == 0, config.Output);
        var rules = await PromtoolAsync("check", "rules", Path.Combine(Prometheus, "alerts.yml"));
        Assert.True(rules.ExitCode == 0, rules.Output);
        var fire = await PromtoolAsync("test", "rules", Path.Combine(Prometheus, "alerts.test.yml"));
        Assert.True(fire.ExitCode == 0, fire.Output);

        // The dashboard's queries, checked by promtool as the expressions of recording rules.
        using var folder = new TempDirectory();
        var asRules = Path.Combine(folder.Path, "dashboard-queries.yml");
        var queries = DashboardQueries();
        Assert.NotEmpty(queries);
        await File.WriteAllTextAsync(asRules, "groups:\n  - name: dashboard\n    rules:\n"
            + string.Concat(queries.Select((q, i) => $"      - record: dashboard:panel_{i}\n        expr: {JsonSerializer.Serialize(q)}\n")));
        var parsed = await PromtoolAsync("check", "rules", asRules);
        Assert.True(parsed.ExitCode == 0, parsed.Output);
    }

    [GeneratedRegex(@"\bpipeline_[a-z_]+")]
    private static partial Regex PipelineSeries();

    [Fact]
    public async Task Should_read_only_series_the_pipeline_exports()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 20));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(2);
        var read = PipelineSeries().Matches(File.ReadAllText(Path.Combine(Prometheus, "alerts.yml")) + string.Join('\n', DashboardQueries()))
            .Select(m => m.Value).Distinct().ToList();
        Assert.NotEmpty(read);
        // The queue depths are read from RabbitMQ by the health watcher: on the in-memory transport there are none.
        var expected = read.Where(name => name != "pipeline_queue_depth").ToList();

        // The gauges counted from the store appear with the counter's first pass, within seconds of the start.
        using var anonymous = pipeline.Client(null);
        await Eventually.Until(() => anonymous.GetStringAsync("/metrics"),
            scrape => expected.All(PipelineSeries().Matches(scrape).Select(m => m.Value).ToHashSet(StringComparer.Ordinal).Contains),
            TimeSpan.FromSeconds(30), "every series the rules and the dashboard read",
            scrape => "missing: " + string.Join(", ", expected.Except(PipelineSeries().Matches(scrape).Select(m => m.Value))));
    }
}
