using System.Text.RegularExpressions;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;
using Pipeline.Tests.Support;
using Serilog.Events;
using Serilog.Parsing;

namespace Pipeline.Tests.Hosting;

/// <summary>
/// What an operator reads in the logs: warnings for what needs a look, not for the races optimistic concurrency
/// expects and retries.
/// </summary>
public sealed partial class When_production_runs_without_a_fault
{
    private static LogEvent Warning(string template, Exception exception) =>
        new(DateTimeOffset.UtcNow, LogEventLevel.Warning, exception, new MessageTemplateParser().Parse(template), []);

    [Fact]
    public void Should_leave_out_the_retry_warning_of_a_saga_version_conflict_and_nothing_else()
    {
        var conflict = new ConcurrencyConflictException("File saga 1 changed since version 3 was read.");
        Assert.True(PipelineHosting.IsRetriedSagaRace(Warning("R-RETRY {InputAddress} {MessageId} {MessageType}", conflict)));
        Assert.True(PipelineHosting.IsRetriedSagaRace(Warning("R-RETRY {InputAddress} {MessageId} {MessageType}", new InvalidOperationException("wrapped", conflict))));

        // Any other retried failure, and the conflict anywhere but a retry, are kept.
        Assert.False(PipelineHosting.IsRetriedSagaRace(Warning("R-RETRY {InputAddress} {MessageId} {MessageType}", new IOException("disk"))));
        Assert.False(PipelineHosting.IsRetriedSagaRace(Warning("R-FAULT {InputAddress} {MessageId} {MessageType}", conflict)));
        Assert.False(PipelineHosting.IsRetriedSagaRace(new LogEvent(DateTimeOffset.UtcNow, LogEventLevel.Error, conflict,
            new MessageTemplateParser().Parse("R-RETRY {InputAddress}"), [])));
    }

    [Fact]
    public void Should_write_a_retry_that_gives_up_on_an_expected_failure_as_a_warning_with_its_reason_and_no_stack()
    {
        var template = new MessageTemplateParser().Parse("R-FAULT {InputAddress} {MessageId} {MessageType}");
        LogEvent Fault(Exception exception) => new(DateTimeOffset.UtcNow, LogEventLevel.Error, exception, template,
            [new LogEventProperty("InputAddress", new ScalarValue("rabbitmq://localhost/orchestrator")), new LogEventProperty("MessageType", new ScalarValue("FileStaged"))]);
        var timeout = new TimeoutException("The broker did not confirm FileStaged within 30.0 s");

        var gaveUp = ExpectedFaultSink.Rewrite(Fault(new InvalidOperationException("wrapped", timeout)));
        var retried = ExpectedFaultSink.Rewrite(Warning("R-RETRY {InputAddress} {MessageId} {MessageType}", new HttpRequestException("connection refused")));

        Assert.Equal(LogEventLevel.Warning, gaveUp.Level);
        Assert.Null(gaveUp.Exception);
        Assert.Contains("gave up after its retries, the message waits in the error queue: \"TimeoutException: The broker did not confirm FileStaged within 30.0 s\"", gaveUp.RenderMessage(), StringComparison.Ordinal);
        Assert.Contains("orchestrator", gaveUp.RenderMessage(), StringComparison.Ordinal);
        Assert.Null(retried.Exception);
        Assert.Contains("tried again after \"HttpRequestException: connection refused\"", retried.RenderMessage(), StringComparison.Ordinal);
        // A run event rejected as bad input says every problem in its reason: its stack adds nothing.
        var rejected = ExpectedFaultSink.Rewrite(Fault(new Pipeline.Production.Ingest.InvalidRunException(new Dictionary<string, string[]> { ["run"] = ["must be a positive run number"] })));
        Assert.Equal(LogEventLevel.Warning, rejected.Level);
        Assert.Null(rejected.Exception);
        Assert.Contains("must be a positive run number", rejected.RenderMessage(), StringComparison.Ordinal);
        // The unexpected keeps its level and its stack, and nothing but MassTransit's retry reports is touched.
        var bug = Fault(new InvalidOperationException("a bug"));
        Assert.Same(bug, ExpectedFaultSink.Rewrite(bug));
        var other = new LogEvent(DateTimeOffset.UtcNow, LogEventLevel.Error, timeout, new MessageTemplateParser().Parse("Could not record the {Stage} activity"), []);
        Assert.Same(other, ExpectedFaultSink.Rewrite(other));
    }

    [GeneratedRegex(@"^\[\d\d:\d\d:\d\d (WRN|ERR|FTL)\] ")]
    private static partial Regex WarningOrWorse();

    [Fact]
    public async Task Should_log_no_warning_and_no_stack_trace_in_a_demo()
    {
        using var data = new TempDirectory();
        // Three runs of several files each, so that messages about one file meet in the orchestrator and race.
        var demo = await Tool.RunAsync("dotnet", [Path.Combine(AppContext.BaseDirectory, "Pipeline.Host.dll"), "demo"], new Dictionary<string, string?>
        {
            ["DEMO_DIR"] = Path.Combine(data.Path, "demo"),
            ["RUNS"] = "3",
            ["FILES"] = "4",
            ["EVENTS"] = "300",
        }, data.Path);
        var lines = demo.Errors.Split('\n');

        Assert.True(demo.ExitCode == 0, $"the demo failed:\n{demo.Output}\n{string.Join('\n', lines.TakeLast(40))}");
        var warnings = lines.Where(l => WarningOrWorse().IsMatch(l)).ToList();
        Assert.True(warnings.Count == 0, $"{warnings.Count} warnings or errors in a clean demo:\n{string.Join('\n', warnings)}");
        var frames = lines.Count(l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
        Assert.True(frames == 0, $"{frames} stack frames in a clean demo's log");
        // A line written while a stage works on a file names the file, its run, campaign and attempt, and the file's trace.
        var staged = lines.Where(l => l.Contains("] Pipeline.Stager.StageFileConsumer: Staged ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(staged);
        Assert.All(staged, line =>
        {
            var ids = FileIds().Match(line);
            Assert.True(ids.Success, $"no ids on: {line}");
            Assert.Equal(Guid.Parse(ids.Groups["file"].Value).ToString("N"), ids.Groups["trace"].Value);
        });
    }

    [GeneratedRegex(@" \{ file=(?<file>[0-9a-f-]{36}) run=\d+ campaign=\S+ attempt=\d+ trace=(?<trace>[0-9a-f]{32}) \}$")]
    private static partial Regex FileIds();
}
