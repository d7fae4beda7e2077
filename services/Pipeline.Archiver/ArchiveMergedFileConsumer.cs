using System.Diagnostics;
using MassTransit;
using Pipeline.Infrastructure.Telemetry;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.State;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Archiver;

/// <summary>
/// Copies a merged file into the archive (checksummed while it moves), reads it back and verifies
/// Adler-32 again, catalogs it with the raw files it came from, and tells each raw file's saga.
/// Repeats are harmless: a file already catalogued is only reported again.
/// </summary>
public sealed class ArchiveMergedFileConsumer(
    StorageAreas areas,
    ICatalog catalog,
    IMergeStore merges,
    TimeProvider time,
    StageReporter report,
    ILogger<ArchiveMergedFileConsumer> logger) : IConsumer<ArchiveMergedFile>
{
    public static string ArchiveName(string mergedName) => $"merged/{mergedName}";

    public async Task Consume(ConsumeContext<ArchiveMergedFile> context)
    {
        var message = context.Message;
        var archiveName = ArchiveName(message.MergedName);
        var catalogued = (await catalog.FindAsync(archiveName, context.CancellationToken)).Any(e => e.Area == StorageOptions.Archive);
        if (!catalogued)
        {
            var started = Stopwatch.GetTimestamp();
            using var writer = report.Busy(PipelineMetrics.Archive);
            if (!areas.Output.Exists(message.MergedName))
            {
                throw new FileNotFoundException($"Merged file {message.MergedName} is neither in the output area nor catalogued in the archive.");
            }
            var (size, adler) = await StreamingCopy.CopyAsync(areas.Output, message.MergedName, areas.Archive, archiveName, context.CancellationToken);
            Verify(message, size, adler, "while copying");

            // Read back what the archive holds: the copy is trusted only once its own bytes check out.
            var (readSize, readAdler) = await areas.Archive.ChecksumAsync(archiveName, context.CancellationToken);
            Verify(message, readSize, readAdler, "reading back from the archive");

            await catalog.AddAsync(new CatalogEntry(archiveName, StorageOptions.Archive, CatalogEntry.Merged, message.Campaign, message.Dataset,
                message.Size, message.Adler32, message.Events, message.Sources, time.GetUtcNow()), context.CancellationToken);
            await report.CompletedAsync(PipelineMetrics.Archive, message.Size, Stopwatch.GetElapsedTime(started), CancellationToken.None);
            logger.LogInformation("Archived {ArchiveName} ({Size} bytes, adler32 {Adler32}, {Events} events from {Sources} outputs)",
                archiveName, message.Size, message.Adler32, message.Events, message.Sources.Count);
        }

        await merges.MarkArchivedAsync(message.MergedName, context.CancellationToken);
        foreach (var group in message.Sources.GroupBy(s => s.FileId))
        {
            var first = group.First();
            await context.Publish(new OutputsArchived(group.Key, first.Run, first.Stream, message.Campaign, message.MergedName, [.. group.Select(s => s.OutputId)]));
        }
        if (areas.Output.Exists(message.MergedName))
        {
            areas.Output.Delete(message.MergedName);
        }
    }

    private void Verify(ArchiveMergedFile message, long size, uint adler, string when)
    {
        if (size != message.Size || !Adler32Checksum.Same(Adler32Checksum.Format(adler), message.Adler32))
        {
            areas.Archive.Delete(ArchiveName(message.MergedName));
            report.Failed(PipelineMetrics.Archive, "verification failed");
            throw new InvalidDataException(
                $"Archive copy of {message.MergedName} failed verification {when}: expected {message.Size} bytes adler32 {message.Adler32}, got {size} bytes adler32 {Adler32Checksum.Format(adler)}.");
        }
    }
}

public sealed class ArchiveMergedFileConsumerDefinition : ConsumerDefinition<ArchiveMergedFileConsumer>
{
    public const string QueueName = "archiver";

    private readonly ArchiverOptions _options;

    public ArchiveMergedFileConsumerDefinition(IOptions<ArchiverOptions> options)
    {
        _options = options.Value;
        EndpointName = QueueName;
        ConcurrentMessageLimit = _options.Writers;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<ArchiveMergedFileConsumer> consumerConfigurator, IRegistrationContext context)
    {
        endpointConfigurator.PrefetchCount = _options.Writers;
        endpointConfigurator.UseMessageRetry(r => r.Intervals(1000, 5000, 15000, 30000));
        endpointConfigurator.UseInMemoryOutbox(context);
    }
}
