using Pipeline.Infrastructure.Telemetry;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Hosting;

[Collection(RabbitMqCollection.Name)]
public sealed class When_a_file_is_traced(RabbitMqBroker broker)
{
    private static readonly string[] StagesInOrder = ["registration", "staging", "reconstruction", "merge", "archive"];

    [Fact]
    public async Task Should_export_one_trace_per_file_with_every_stage_in_order_and_nothing_of_another_file()
    {
        await using var collector = await OtlpReceiver.StartAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.Endpoint.ToString(),
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
        });
        // A run number no other test uses: a file's id (and so its trace id) follows from its campaign and name, and the
        // spans of every pipeline running in this process at the time reach this collector. With the default run, a
        // test running beside this one had a file of the same id, whose archive step showed up in this file's trace
        // before its staging (a clean-clone run saw that).
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FirstRun: 7317, FilesPerStream: 2, EventsPerFile: 50)))[0];
        await pipeline.IngestAsync([run]);
        await pipeline.WaitForFinalAsync(4);
        var files = await pipeline.AllFilesAsync();
        Assert.All(files, f => Assert.Equal("Archived", f.CurrentState));

        var traces = new Dictionary<Guid, IReadOnlyList<ReceivedSpan>>();
        foreach (var file in files)
        {
            var traceId = FileTracing.TraceIdOf(file.CorrelationId);
            // The last step (the file's archive recorded by the orchestrator) is exported a moment after the file is final.
            traces[file.CorrelationId] = await Eventually.Until(() => Task.FromResult(collector.Trace(traceId)),
                spans => spans.Any(s => s[FileTracing.StageTag] == "archive" && s[FileTracing.OutcomeTag] is { } outcome && outcome.StartsWith("Archived", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(30), $"the archive step in trace {traceId}",
                spans => string.Join(", ", spans.Where(s => s.Scope == FileTracing.SourceName).Select(s => $"{s.Name} ({s[FileTracing.OutcomeTag]})")));
        }

        foreach (var (fileId, spans) in traces)
        {
            var steps = spans.Where(s => s.Scope == FileTracing.SourceName).ToList();
            // Only this file: every span of the trace that names a file names this one.
            Assert.All(spans.Where(s => s[FileTracing.FileIdTag] is not null), s => Assert.Equal(fileId.ToString(), s[FileTracing.FileIdTag]));
            // Every stage, in the pipeline's order (log collection runs beside the merge, after the reconstruction).
            var firstOf = StagesInOrder.Append("collection").ToDictionary(stage => stage,
                stage => steps.FirstOrDefault(s => s[FileTracing.StageTag] == stage)?.StartNanos ?? throw new Xunit.Sdk.XunitException(
                    $"no {stage} step in the trace of {fileId}: {string.Join(", ", steps.Select(s => s.Name))}"));
            for (var i = 1; i < StagesInOrder.Length; i++)
            {
                Assert.True(firstOf[StagesInOrder[i - 1]] <= firstOf[StagesInOrder[i]], $"{StagesInOrder[i - 1]} before {StagesInOrder[i]} in {string.Join(", ", steps.Select(s => s.Name))}");
            }
            Assert.True(firstOf["reconstruction"] <= firstOf["collection"]);
            // Each service's step says which attempt and how it ended. A step can be done more than once (a stage-in
            // asked for again after a stall, a redelivery): one of them succeeded, and every one names its attempt.
            var named = string.Join("\n", steps.Select(s => $"{s.Name} {s[FileTracing.StageTag]} {s[FileTracing.AttemptTag]} {s[FileTracing.OutcomeTag]}"));
            var stagings = steps.Where(s => s.Name == "stager StageFile").ToList();
            Assert.True(stagings.Count > 0 && stagings.All(s => int.TryParse(s[FileTracing.AttemptTag], out var attempt) && attempt >= 1), named);
            Assert.True(stagings.Any(s => s[FileTracing.OutcomeTag]?.StartsWith("staged as ", StringComparison.Ordinal) == true), named);
            Assert.True(steps.Any(s => s.Name == "reconstruction job" && s[FileTracing.OutcomeTag]?.StartsWith("reconstructed: ", StringComparison.Ordinal) == true), named);
            Assert.Contains(steps, s => s.Name == "merger MergeOutput" && s[FileTracing.OutcomeTag] == "completed");
            Assert.Contains(steps, s => s.Name == "collector CollectJobLogs");
            Assert.All(steps, s => Assert.NotNull(s[FileTracing.OutcomeTag]));
        }

        // Every file's registration is linked to the trace of the campaign feeder's pass that registered it, which is none
        // of the files'. One run's files may be registered over two passes (a clean-clone run once saw that).
        var registrations = traces.Values.Select(spans => spans.Where(s => s.Scope == FileTracing.SourceName && s.Name == "orchestrator FileRegistered").ToList()).ToList();
        Assert.All(registrations, spans => Assert.All(spans, s => Assert.NotEmpty(s.LinkedTraceIds)));
        Assert.All(registrations, spans => Assert.NotEmpty(spans));
        var runTraces = registrations.SelectMany(spans => spans.SelectMany(s => s.LinkedTraceIds)).Distinct().ToList();
        Assert.InRange(runTraces.Count, 1, 2);
        Assert.All(runTraces, runTrace => Assert.DoesNotContain(runTrace, traces.Keys.Select(FileTracing.TraceIdOf)));
        // A merged file has a trace of its own, linked to the trace of each file in it.
        var merges = collector.Spans.Where(s => s.Name.StartsWith("merge ", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(merges);
        Assert.All(merges, m => Assert.DoesNotContain(m.TraceId, traces.Keys.Select(FileTracing.TraceIdOf)));
        Assert.All(traces.Keys, id => Assert.Contains(merges, m => m.LinkedTraceIds.Contains(FileTracing.TraceIdOf(id))));
    }
}
