using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Archiver;

/// <summary>
/// Writes merged files to the archive. Each request is kept in the archiver's own queue (<see cref="IArchiveQueue"/>);
/// then, holding the dataset's mover (few at once across all archivers, one per dataset), the archiver writes the
/// dataset's files in the order the merger numbered them, from the first not yet written up to the first whose request
/// has not arrived — so a dataset reaches its volumes in run order whatever order the requests arrive in, and a
/// request that overtook an earlier one waits for it. Each file is written to every
/// archive area the dataset asks copies on, each copy verified (size and Adler-32, read back) and catalogued; the file
/// counts as archived only when all are, and on a nearline archive only once the endpoint reports the tape copy
/// (<see cref="MigrationWatch"/> waits for that). Then each raw file's saga (and the merger, which keeps the inputs until then)
/// is told and the output area's copy is removed. A merged file found corrupted at its source is sent back to the
/// merger to be made again, and its archiving retried.
/// Repeats are harmless: a file already archived is only reported again.
/// </summary>
public sealed class ArchiveMergedFileConsumer(
    StorageAreas areas,
    ArchiveLibrary archives,
    ICatalog catalog,
    IArchiveQueue queue,
    Movers movers,
    MigrationWatch migrations,
    FlowControl flow,
    CampaignDirectory campaigns,
    AreaGate gate,
    TimeProvider time,
    StageReporter report,
    IBus bus,
    ILogger<ArchiveMergedFileConsumer> logger) : IConsumer<ArchiveMergedFile>
{
    /// <summary>A dataset's unarchived files read from the store at a time.</summary>
    private const int FilesPerPage = 100;

    /// <summary>What the archiver logs when a merged file no longer matches its record, for the fault suite to count.</summary>
    public const string CorruptSourceMessage = "Merged file is corrupted in the output area";

    public static string ArchiveName(string mergedName) => $"merged/{mergedName}";

    public async Task Consume(ConsumeContext<ArchiveMergedFile> context)
    {
        var file = await queue.EnqueueAsync(QueuedMergedFile.Of(context.Message, time.GetUtcNow()), context.CancellationToken);
        if (file.State != ArchivingState.Archived)
        {
            await using var mover = await movers.AcquireAsync($"{file.Campaign}/{file.Dataset}", context.CancellationToken);
            if (file.Sequence == 0)
            {
                // Merged before files were numbered: written on its own turn.
                await ArchiveAsync(file, mover.Token);
                return;
            }
            await WriteInOrderAsync(context, file, mover.Token);
            file = (await queue.GetAsync(file.Name, context.CancellationToken))!;
            // Written before (on another file's turn) and awaiting its tape copy: the migration watch sent it again.
            if (file.State == ArchivingState.Written && await OnTapeAsync(file, ArchiveName(file.Name), CopiesOf(file, await CampaignCopiesAsync(file, context.CancellationToken)), context.CancellationToken))
            {
                await FinishAsync(file, Stopwatch.GetTimestamp());
            }
            return;
        }
        // Archived already (by an earlier delivery): report it again.
        await ReportArchivedAsync(file.Name, file.Campaign, file.Sources);
    }

    /// <summary>
    /// Writes the dataset's waiting files in their order, from the first not written, until one is missing: its request
    /// is on its way, or was lost (a merger stopped between its commit and its publish), so the merger is asked to send
    /// it again; its arrival carries on from there.
    /// </summary>
    private async Task WriteInOrderAsync(ConsumeContext context, QueuedMergedFile asked, CancellationToken cancellationToken)
    {
        var next = await queue.LastWrittenAsync(asked.Campaign, asked.Dataset, cancellationToken) + 1;
        while (true)
        {
            var page = await queue.ListFromAsync(asked.Campaign, asked.Dataset, next, FilesPerPage, cancellationToken);
            foreach (var file in page)
            {
                if (file.Sequence != next)
                {
                    logger.LogInformation("{MergedName} waits for file {Sequence} of {Campaign}/{Dataset}, whose request has not arrived; the merger is asked for it again",
                        file.Name, next, asked.Campaign, asked.Dataset);
                    await context.PublishBoundedAsync(new ResendMergedFile(asked.Campaign, asked.Dataset, next));
                    return;
                }
                await ArchiveAsync(file, cancellationToken);
                next++;
            }
            if (page.Count < FilesPerPage)
            {
                return;
            }
        }
    }

    /// <summary>Writes the file's missing copies and marks it written; then archived, unless a tape copy is awaited.</summary>
    private async Task ArchiveAsync(QueuedMergedFile file, CancellationToken cancellationToken)
    {
        var archiveName = ArchiveName(file.Name);
        var started = Stopwatch.GetTimestamp();
        var sources = file.Sources;
        var catalogued = (await catalog.FindAsync(archiveName, cancellationToken)).Select(e => e.Area).ToHashSet(StringComparer.Ordinal);
        // A further copy is made from a copy already verified on a storage server when there is one, so that two servers
        // can copy between themselves (third-party) instead of through this host; otherwise from the output area.
        var copies = CopiesOf(file, await CampaignCopiesAsync(file, cancellationToken));
        var (source, sourceName) = copies.Where(catalogued.Contains)
            .Select(c => archives[c].Area).OfType<StorageArea>().FirstOrDefault(a => !a.IsLocal) is { } held
            ? (held, archiveName)
            : (areas.Output, file.Name);
        foreach (var copy in copies.Where(c => !catalogued.Contains(c)))
        {
            if (!await areas.Output.ExistsAsync(file.Name, cancellationToken))
            {
                throw new FileNotFoundException($"Merged file {file.Name} is neither in the output area nor catalogued in archive area {copy}.");
            }
            using (report.Busy(PipelineMetrics.Archive))
            {
                try
                {
                    await archives[copy].WriteAsync(archiveName, source, sourceName, file.Size, file.Adler32, cancellationToken);
                }
                catch (ArchiveException ex)
                {
                    report.Failed(PipelineMetrics.Archive, "verification failed");
                    logger.LogWarning("Archiving {MergedName} to {Area} failed: {Reason}", file.Name, copy, ex.Message);
                    // A copy that does not verify is either a bad write or a bad source: only the second is the merger's to mend.
                    var (size, adler) = await areas.Output.ChecksumAsync(file.Name, cancellationToken);
                    if (size != file.Size || !Adler32Checksum.Same(Adler32Checksum.Format(adler), file.Adler32))
                    {
                        var reason = $"the output area holds {size} bytes adler32 {Adler32Checksum.Format(adler)}, the merger recorded {file.Size} bytes adler32 {file.Adler32}";
                        logger.LogWarning(CorruptSourceMessage + " {MergedName}: {Reason}; asking the merger to make it again", file.Name, reason);
                        // Through the bus, not the consume context: its outbox would drop the request with the failed delivery.
                        await bus.PublishBoundedAsync(new RemakeMergedFile(file.Name, file.Campaign, file.Dataset, reason), CancellationToken.None);
                    }
                    throw;
                }
            }
            await catalog.AddAsync(new CatalogEntry(archiveName, copy, CatalogEntry.Merged, file.Campaign, file.Dataset,
                file.Size, file.Adler32, file.Events, sources, time.GetUtcNow(), file.Manifest), CancellationToken.None);
            logger.LogInformation("Archived {ArchiveName} in {Area} from {Source} ({Size} bytes, adler32 {Adler32}, {Events} events from {Sources} outputs)",
                archiveName, copy, source.Name, file.Size, file.Adler32, file.Events, sources.Count);
            if (source == areas.Output && archives[copy].Area is { IsLocal: false } written)
            {
                (source, sourceName) = (written, archiveName);
            }
        }
        await queue.MarkAsync(file.Name, ArchivingState.Written, CancellationToken.None);
        if (await OnTapeAsync(file, archiveName, copies, cancellationToken))
        {
            await FinishAsync(file, started);
        }
    }

    /// <summary>
    /// Tells the file's raw files (and the merger) that it is archived, then records it so. Told first: a file recorded
    /// archived is never written or told again, so a report lost after the record would be lost for good, while one
    /// made twice is ignored.
    /// </summary>
    private async Task FinishAsync(QueuedMergedFile file, long started)
    {
        await ReportArchivedAsync(file.Name, file.Campaign, file.Sources);
        await queue.MarkAsync(file.Name, ArchivingState.Archived, CancellationToken.None);
        await report.CompletedAsync(PipelineMetrics.Archive, file.Campaign, file.Size, Stopwatch.GetElapsedTime(started), CancellationToken.None);
    }

    private async Task<IReadOnlyList<string>?> CampaignCopiesAsync(QueuedMergedFile file, CancellationToken cancellationToken) =>
        (await campaigns.GetAsync(file.Campaign, cancellationToken))?.Definition.Copies;

    private List<string> CopiesOf(QueuedMergedFile file, IReadOnlyList<string>? campaignCopies) => [.. flow.CopiesOf(file.Dataset, campaignCopies)];

    /// <summary>
    /// Whether every copy is on tape where its archive is nearline. A file still migrating is watched (and its raw files
    /// told, once, that they wait for it): it counts as archived, and its output-area copy goes, only when all are.
    /// </summary>
    private async Task<bool> OnTapeAsync(QueuedMergedFile file, string archiveName, IReadOnlyList<string> copies, CancellationToken cancellationToken)
    {
        var pending = new List<string>();
        foreach (var copy in copies)
        {
            if (!(await archives[copy].MigrationOfAsync(archiveName, file.Size, file.Adler32, cancellationToken)).OnTape)
            {
                pending.Add(copy);
            }
        }
        if (pending.Count == 0)
        {
            return true;
        }
        if (!migrations.IsWatching(file.Name))
        {
            foreach (var group in file.Sources.GroupBy(s => s.FileId))
            {
                var first = group.First();
                // No attempt: the file's outputs are past reconstruction, and any attempt's history takes the line.
                // Through the bus, before the file is watched: its archived report, which the watch sends through the bus
                // as soon as the tape copy is there, must come after it (from the consume's outbox it came after the
                // report whenever the consume, writing more files of the dataset, outlasted the migration).
                await bus.PublishBoundedAsync(new FileWaiting(group.Key, first.Run, first.Stream, file.Campaign, 0,
                    $"migrating: merged file {file.Name} is on {string.Join(", ", pending)}; waiting for the endpoint to report its tape copy", null));
            }
            logger.LogInformation("Merged file {MergedName} written to {Archives}; waiting for its tape copy", file.Name, string.Join(", ", pending));
        }
        var writtenAt = (await catalog.FindAsync(archiveName, cancellationToken)).Where(e => pending.Contains(e.Area)).Select(e => e.CreatedAt)
            .DefaultIfEmpty(time.GetUtcNow()).Min();
        migrations.Watch(file.ToRequest(), archiveName, pending, writtenAt);
        return false;
    }

    /// <summary>
    /// Through the bus, not the consume context: a file archived on another file's turn is reported even when that other
    /// file then fails, which would make the consume context's outbox drop every report it held.
    /// </summary>
    private async Task ReportArchivedAsync(string mergedName, string campaign, IReadOnlyList<MergedSource> sources)
    {
        foreach (var group in sources.GroupBy(s => s.FileId))
        {
            var first = group.First();
            await bus.PublishBoundedAsync(new OutputsArchived(group.Key, first.Run, first.Stream, campaign, mergedName, [.. group.Select(s => s.OutputId)]), CancellationToken.None);
        }
        await areas.Output.DeleteAsync(mergedName, CancellationToken.None);
        await gate.ReleaseAsync(StorageOptions.Output, mergedName);
    }
}

public sealed class ArchiveMergedFileConsumerDefinition(IOptions<ArchiverOptions> options)
    : QueueConsumerDefinition<ArchiveMergedFileConsumer>(QueueName, [1000, 5000, 15000, 30000], slots: options.Value.Writers)
{
    public const string QueueName = "archiver";
}
