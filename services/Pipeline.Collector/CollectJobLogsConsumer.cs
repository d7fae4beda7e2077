using System.Diagnostics;
using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Hosting;

namespace Pipeline.Collector;

/// <summary>
/// Copies a finished job's log and histogram files from scratch to the logs area, under
/// campaign/run/stream/file/attempt, then removes them from scratch.
/// </summary>
public sealed class CollectJobLogsConsumer(StorageAreas areas, StageReporter report, ILogger<CollectJobLogsConsumer> logger) : IConsumer<CollectJobLogs>
{
    public static string LogFolder(string campaign, int run, string stream, Guid fileId, int attempt) =>
        $"{campaign}/run{run:D6}/{stream}/{fileId:N}/attempt-{attempt}";

    public async Task Consume(ConsumeContext<CollectJobLogs> context)
    {
        var started = Stopwatch.GetTimestamp();
        var message = context.Message;
        long bytes = 0;
        var folder = LogFolder(message.Campaign, message.Run, message.Stream, message.FileId, message.Attempt);
        var collected = new List<string>();
        foreach (var file in message.Files)
        {
            var source = $"{message.JobDirectory}/{file}";
            var target = $"{folder}/{file}";
            if (!areas.Scratch.Exists(source))
            {
                // Already collected by an earlier delivery of this message.
                if (await areas.Logs.ExistsAsync(target, context.CancellationToken))
                {
                    collected.Add(target);
                }
                continue;
            }
            bytes += (await StreamingCopy.CopyAsync(areas.Scratch, source, areas.Logs, target, context.CancellationToken)).Size;
            areas.Scratch.Delete(source);
            collected.Add(target);
        }
        await report.CompletedAsync(PipelineMetrics.Collection, message.Campaign, bytes, Stopwatch.GetElapsedTime(started), CancellationToken.None);
        logger.LogInformation("Collected {Count} log files of {FileId} attempt {Attempt} into {Folder}", collected.Count, message.FileId, message.Attempt, folder);
        await context.PublishBoundedAsync(new JobLogsCollected(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, collected));
    }
}

public sealed class CollectJobLogsConsumerDefinition() : QueueConsumerDefinition<CollectJobLogsConsumer>(QueueName, [500, 2000, 10000])
{
    public const string QueueName = "collector";
}
