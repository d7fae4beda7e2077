using Pipeline.Faults;

namespace Pipeline.Tests.EndToEnd;

public sealed class When_hey_reports_a_load_run
{
    private const string Output = """

        Summary:
          Total:	20.0123 secs
          Slowest:	0.3012 secs
          Fastest:	0.0011 secs
          Average:	0.0320 secs
          Requests/sec:	155.9365

        Latency distribution:
          10% in 0.0081 secs
          25% in 0.0150 secs
          50% in 0.0270 secs
          75% in 0.0410 secs
          90% in 0.0640 secs
          95% in 0.0790 secs
          99% in 0.1308 secs

        Status code distribution:
          [200]	3100 responses
          [503]	4 responses

        Error distribution:
          [12]	Get "http://127.0.0.1:1/api/summary": dial tcp 127.0.0.1:1: connect: connection refused
          [3]	Get "http://127.0.0.1:1/api/summary": context deadline exceeded
        """;

    [Fact]
    public void Should_read_the_percentiles_the_answers_and_every_error()
    {
        var load = LoadRun.Parse("/api/summary", 5, Output);

        Assert.Equal(new EndpointLoad("/api/summary", 5, 3119, 155.9, 27, 79, 130.8, 15, 4), load);
    }
}

/// <summary>The short version of `make load`: hey on the read endpoints while files flow through the services as processes.</summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_the_api_is_read_under_load_while_files_flow
{
    [SkippableFact]
    public async Task Should_answer_every_request_without_an_error()
    {
        Skip.IfNot(FaultBroker.Installed && File.Exists(LoadRun.Hey), $"The load run needs Debian's rabbitmq-server and hey ({LoadRun.Hey}), which are not installed here.");

        var report = await new LoadRun(TimeSpan.FromSeconds(15), connections: 8, files: 800, brokerPort: 5685, TextWriter.Null).RunAsync(CancellationToken.None);

        Assert.True(report.Passed, System.Text.Json.JsonSerializer.Serialize(report));
        Assert.All(report.Endpoints, e => Assert.True(e.Requests > 10 && e.P95Ms > 0, System.Text.Json.JsonSerializer.Serialize(e)));
    }
}

/// <summary>The short version of `make soak`: runs keep coming for a few minutes, a few poisoned among them.</summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_runs_keep_coming_for_minutes
{
    [SkippableFact]
    public async Task Should_keep_descriptors_flat_memory_bounded_drain_every_queue_and_hold_only_the_poisoned_messages()
    {
        Skip.IfNot(FaultBroker.Installed, $"The soak needs Debian's rabbitmq-server ({FaultBroker.ServerScript}), which is not installed here.");

        var report = await new SoakRun(TimeSpan.FromMinutes(3), TimeSpan.FromSeconds(8), filesPerRun: 20, poisoned: 3, brokerPort: 5686, TextWriter.Null, allowedGrowthPercent: 50).RunAsync(CancellationToken.None);

        var context = System.Text.Json.JsonSerializer.Serialize(report) + "\n" + string.Join('\n', report.Problems);
        Assert.True(report.Passed, context);
        Assert.True(report.Runs >= 15, context);
        Assert.Equal(3, report.ErrorQueues["run-events_error"]);
        Assert.Equal(ProcessPipeline.Services.Length, report.Processes.Count);
    }
}
