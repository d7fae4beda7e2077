using System.Diagnostics;
using MassTransit;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Stager;

/// <summary>
/// Copies a raw file from the archive into the cache, computing Adler-32 on the way, and reports it
/// staged only if size and checksum match the catalogue. A mismatch is reported as a failure (the
/// saga decides whether to try again) and the bad copy is removed.
/// </summary>
public sealed class StageFileConsumer(StorageAreas areas, StageReporter report, ILogger<StageFileConsumer> logger) : IConsumer<StageFile>
{
    public async Task Consume(ConsumeContext<StageFile> context)
    {
        var started = Stopwatch.GetTimestamp();
        var message = context.Message;
        var cachedName = $"{message.Campaign}/{message.LogicalName}";
        if (!areas.Archive.Exists(message.LogicalName))
        {
            await Fail(context, $"raw file {message.LogicalName} is not in the archive");
            return;
        }

        var (size, adler) = await StreamingCopy.CopyAsync(areas.Archive, message.LogicalName, areas.Cache, cachedName, context.CancellationToken);

        var read = Adler32Checksum.Format(adler);
        if (size != message.Size || !Adler32Checksum.Same(read, message.Adler32))
        {
            areas.Cache.Delete(cachedName);
            await Fail(context, $"checksum mismatch staging {message.LogicalName}: catalogued {message.Size} bytes adler32 {message.Adler32}, read {size} bytes adler32 {read}");
            return;
        }
        await report.CompletedAsync(PipelineMetrics.Staging, size, Stopwatch.GetElapsedTime(started), CancellationToken.None);
        logger.LogInformation("Staged {LogicalName} ({Size} bytes, adler32 {Adler32}) attempt {Attempt}", message.LogicalName, size, read, message.Attempt);
        await context.Publish(new FileStaged(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, cachedName, size, read));
    }

    private async Task Fail(ConsumeContext<StageFile> context, string reason)
    {
        var message = context.Message;
        report.Failed(PipelineMetrics.Staging, reason);
        logger.LogWarning("Staging {LogicalName} attempt {Attempt} failed: {Reason}", message.LogicalName, message.Attempt, reason);
        await context.Publish(new StagingFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, reason));
    }
}

public sealed class StageFileConsumerDefinition : ConsumerDefinition<StageFileConsumer>
{
    public const string QueueName = "stager";

    public StageFileConsumerDefinition()
    {
        EndpointName = QueueName;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<StageFileConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.UseMessageRetry(r => r.Intervals(1000, 5000, 15000));
        endpointConfigurator.UseInMemoryOutbox(context);
    }
}
