using System.Diagnostics;
using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Hosting;

namespace Pipeline.Collector;

/// <summary>
/// Checks a finished job's logs and histograms, which its worker copied into the logs area, against the size and
/// Adler-32 the worker took in the job's folder (the storage's own checksum where it keeps one, else the bytes read
/// back), and records those that match with the file. One that is missing or differs is named in a warning and not
/// recorded: the file's logs list only what can be read as it was written.
/// </summary>
public sealed class CollectJobLogsConsumer(StorageAreas areas, StageReporter report, ILogger<CollectJobLogsConsumer> logger) : IConsumer<CollectJobLogs>
{
    public async Task Consume(ConsumeContext<CollectJobLogs> context)
    {
        var started = Stopwatch.GetTimestamp();
        var message = context.Message;
        long bytes = 0;
        var collected = new List<string>();
        foreach (var file in message.Files)
        {
            var name = $"{message.LogFolder}/{file.Name}";
            if (await ProblemOfAsync(name, file, context.CancellationToken) is { } problem)
            {
                report.Failed(PipelineMetrics.Collection, "log not as written");
                logger.LogWarning("Log {Name} of {FileId} attempt {Attempt} is not recorded: {Problem}", name, message.FileId, message.Attempt, problem);
                continue;
            }
            bytes += file.Size;
            collected.Add(name);
        }
        await report.CompletedAsync(PipelineMetrics.Collection, message.Campaign, bytes, Stopwatch.GetElapsedTime(started), CancellationToken.None);
        logger.LogInformation("Collected {Count} log files of {FileId} attempt {Attempt} in {Folder}", collected.Count, message.FileId, message.Attempt, message.LogFolder);
        await context.PublishBoundedAsync(new JobLogsCollected(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, collected));
    }

    private async Task<string?> ProblemOfAsync(string name, JobLogFile file, CancellationToken cancellationToken)
    {
        var stored = await areas.Logs.StatAsync(name, cancellationToken);
        if (stored is null)
        {
            return $"it is not in the logs area ({areas.Logs.Location})";
        }
        var (size, adler32) = stored.StoredAdler32 is { } reported
            ? (stored.Size, reported)
            : await areas.Logs.ChecksumAsync(name, cancellationToken) is var (read, adler) ? (read, Adler32Checksum.Format(adler)) : default;
        return size == file.Size && Adler32Checksum.Same(adler32, file.Adler32)
            ? null
            : $"the logs area holds {size} bytes adler32 {adler32}, the job's folder held {file.Size} bytes adler32 {file.Adler32}";
    }
}

public sealed class CollectJobLogsConsumerDefinition() : QueueConsumerDefinition<CollectJobLogsConsumer>(QueueName, [500, 2000, 10000])
{
    public const string QueueName = "collector";
}
