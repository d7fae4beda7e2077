using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Faults;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.Jobs;

namespace Pipeline.Stager;

/// <summary>
/// Copies raw files from the archive into the cache, computing Adler-32 on the way, and reports each staged only
/// if size and checksum match the catalogue. Requests are taken in batches and read volume by volume in position
/// order, so a tape volume is mounted once per batch, not once per file; a nearline archive is asked to bring the
/// batch's files online first, in that order, and each file is staged once the endpoint has it on disk. A file enters
/// the cache only when the cache has room (the batch waits, unacknowledged, while it is full). A mismatch is reported
/// as a failure (the saga decides whether to try again) and the bad copy is removed. Requests nobody waits for any more
/// are dropped before a byte moves (<see cref="StageRequestFilter"/>).
/// </summary>
public sealed class StageFileConsumer(
    ArchiveLibrary archives,
    StorageAreas areas,
    AreaGate gate,
    IFileStates states,
    IOptions<StagerOptions> options,
    StageReporter report,
    ILogger<StageFileConsumer> logger) : IConsumer<Batch<StageFile>>
{
    public async Task Consume(ConsumeContext<Batch<StageFile>> context)
    {
        var archive = archives.Primary;
        var wanted = await StageRequestFilter.WantedAsync(states, [.. context.Message], (ConsumeContext<StageFile> request) => request.Message, logger, context.CancellationToken);
        var requests = wanted.Select(request => (Request: request, Location: archive.Locate(request.Message.LogicalName))).ToList();
        // On tape: one group per volume, read in position order, a few volumes at once. Elsewhere every file is its own group.
        var onTape = requests.Any(r => r.Location is not null);
        var groups = onTape
            ? requests.GroupBy(r => r.Location?.Volume ?? "", StringComparer.Ordinal)
                .Select(volume => volume.OrderBy(r => r.Location?.Position ?? 0).Select(r => r.Request).ToList())
                .ToList()
            : [.. requests.Select(r => new List<ConsumeContext<StageFile>> { r.Request })];
        var parallel = new ParallelOptions
        {
            MaxDegreeOfParallelism = onTape ? options.Value.Concurrency : options.Value.DiskConcurrency,
            CancellationToken = context.CancellationToken,
        };
        // A nearline archive is asked once for the whole batch, volume by volume: its tape system then reads each volume once.
        var recalls = (await RecallAsync(archive, [.. groups.SelectMany(g => g).Select(r => r.Message.LogicalName).Distinct(StringComparer.Ordinal)], context.CancellationToken))
            .ToDictionary(r => r.Name, StringComparer.Ordinal);
        foreach (var request in groups.SelectMany(g => g))
        {
            if (recalls.TryGetValue(request.Message.LogicalName, out var recall))
            {
                var message = request.Message;
                var location = archive.Locate(message.LogicalName);
                await request.PublishBoundedAsync(new FileWaiting(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt,
                    $"recalling from tape{(location is null ? "" : $" (volume {location.Volume})")}: asked with {recalls.Count} files, {recall.QueuedAhead} queued ahead; waiting until {recall.Deadline:u} at most",
                    recall.Deadline));
            }
        }
        await Parallel.ForEachAsync(groups, parallel, async (group, token) =>
        {
            foreach (var request in group)
            {
                await FileContext.RunAsync(StageFileConsumerDefinition.QueueName, nameof(StageFile), request.Message,
                    () => StageAsync(archive, request, recalls.GetValueOrDefault(request.Message.LogicalName), token));
            }
        });
    }

    private async Task<IReadOnlyList<Recall>> RecallAsync(IArchive archive, IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        try
        {
            return await archive.RecallAsync(names, cancellationToken);
        }
        catch (IOException ex)
        {
            // Each file's own read then fails or succeeds on its own, and a failure is the saga's to retry.
            logger.LogWarning("Could not ask archive {Archive} to recall {Files} files from tape: {Reason}", archive.Name, names.Count, ex.Message);
            return [];
        }
    }

    private async Task StageAsync(IArchive archive, ConsumeContext<StageFile> context, Recall? recall, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var message = context.Message;
        var cachedName = CachedName(message);
        if (!await archive.ExistsAsync(message.LogicalName, cancellationToken))
        {
            await Fail(context, $"raw file {message.LogicalName} is not in the archive");
            return;
        }
        if (recall is not null)
        {
            try
            {
                await archive.WaitOnlineAsync(recall, cancellationToken);
                logger.LogInformation("Recalled {LogicalName} from tape", message.LogicalName);
            }
            catch (ArchiveException ex)
            {
                await Fail(context, ex.Message);
                return;
            }
        }

        long size;
        uint adler;
        while (true)
        {
            await gate.AdmitAsync(StorageOptions.Cache, cachedName, message.Size, cancellationToken);
            try
            {
                (size, adler) = await archive.ReadIntoAsync(message.LogicalName, areas.Cache, cachedName, cancellationToken);
                break;
            }
            catch (Exception ex) when (DiskSpace.IsDiskFull(ex))
            {
                // Not the file's fault: the partial copy is gone (writes are promoted only whole), and the file waits
                // for room like one held back by a full area, without spending an attempt.
                await gate.ReleaseAsync(StorageOptions.Cache, cachedName);
                gate.NoteDiskFull();
                logger.LogWarning("The cache's disk filled while {LogicalName} was staged; it waits for room and is staged again", message.LogicalName);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
            catch (Exception ex) when (ex is ArchiveException or IOException)
            {
                await gate.ReleaseAsync(StorageOptions.Cache, cachedName);
                await Fail(context, $"could not read {message.LogicalName} from the archive: {ex.Message}");
                return;
            }
        }

        var read = Adler32Checksum.Format(adler);
        if (size != message.Size || !Adler32Checksum.Same(read, message.Adler32))
        {
            await areas.Cache.DeleteAsync(cachedName, CancellationToken.None);
            await gate.ReleaseAsync(StorageOptions.Cache, cachedName);
            await Fail(context, $"checksum mismatch staging {message.LogicalName}: catalogued {message.Size} bytes adler32 {message.Adler32}, read {size} bytes adler32 {read}");
            return;
        }
        // The fault suite flips a byte of a file on this host's disk; a remote cache is not corrupted from here.
        if (areas.Cache is LocalArea cache && FaultInjection.ShouldCorruptStaged(message.Attempt))
        {
            FaultInjection.FlipByte(cache.PathOf(cachedName));
            logger.LogWarning(FaultInjection.CorruptedStagedMessage + " {CachedName} attempt {Attempt}", cachedName, message.Attempt);
        }
        await report.CompletedAsync(PipelineMetrics.Staging, message.Campaign, size, Stopwatch.GetElapsedTime(started), CancellationToken.None);
        logger.LogInformation("Staged {LogicalName} ({Size} bytes, adler32 {Adler32}) attempt {Attempt}", message.LogicalName, size, read, message.Attempt);
        FileTracing.Outcome($"staged as {cachedName}");
        await context.PublishBoundedAsync(new FileStaged(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, cachedName, size, read));
    }

    /// <summary>
    /// Where an attempt's copy goes in the cache: each attempt has its own, so that what is done with an earlier attempt's
    /// copy (discarded when a new stage-in is issued, or when its report comes late) never touches the copy the current
    /// attempt stages and reads: the discard goes through a queue of its own and may come after the new copy is written.
    /// </summary>
    public static string CachedName(StageFile message) => $"{message.Campaign}/attempt-{message.Attempt}/{message.LogicalName}";

    private async Task Fail(ConsumeContext<StageFile> context, string reason)
    {
        var message = context.Message;
        report.Failed(PipelineMetrics.Staging, reason);
        logger.LogWarning("Staging {LogicalName} attempt {Attempt} failed: {Reason}", message.LogicalName, message.Attempt, reason);
        FileTracing.Outcome($"failed: {reason}");
        await context.PublishBoundedAsync(new StagingFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, reason));
    }
}

public sealed class StageFileConsumerDefinition : ConsumerDefinition<StageFileConsumer>
{
    public const string QueueName = "stager";

    private readonly StagerOptions _options;

    public StageFileConsumerDefinition(IOptions<StagerOptions> options)
    {
        _options = options.Value;
        EndpointName = QueueName;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<StageFileConsumer> consumerConfigurator, IRegistrationContext context)
    {
        consumerConfigurator.Options<BatchOptions>(batch => batch
            .SetMessageLimit(_options.BatchSize)
            .SetTimeLimit(TimeSpan.FromMilliseconds(_options.BatchWindowMilliseconds))
            .SetConcurrencyLimit(1));
        endpointConfigurator.UseMessageRetry(r => r.Intervals(1000, 5000, 15000));
        // No outbox: each file is reported staged as soon as it is, because a batch may wait for cache room that only
        // the reconstruction of its own first files can free. A batch tried again stages and reports its files again,
        // which the saga ignores.
    }
}
