using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.EventFormat;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Faults;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Merger;

/// <summary>
/// Watches the datasets' buffers and merges one when it reaches the target size, when it has been
/// idle (the run ended) or when its oldest output has waited too long. A merge writes the new file,
/// then commits it and its inputs in one store transaction; only then is the archiver told. The inputs
/// stay in the unmerged area until the file is archived. Anything interrupted before the commit leaves the buffer as it was.
/// </summary>
public sealed class MergeService(
    IMergeStore merges,
    IRunLedger ledger,
    StorageAreas areas,
    IBus bus,
    CampaignDirectory campaigns,
    IOptions<MergerOptions> options,
    IOptions<PipelineOptions> pipeline,
    TimeProvider time,
    StageReporter report,
    PauseState pause,
    FlowControl flow,
    AreaGate gate,
    IAlerts alerts,
    ILogger<MergeService> logger) : PeriodicWork(time, logger)
{
    private readonly HashSet<string> _waitingAlerts = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Campaign, string Dataset), int> _mergedThrough = [];
    private readonly Dictionary<(string Campaign, int Run), DateTimeOffset> _resendAsked = [];
    private DateTimeOffset? _republishBefore;
    private DateTimeOffset _lastRepublish = DateTimeOffset.MinValue;

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.PollSeconds);

    protected override string What => "A merge pass (the buffers stay as they were)";

    protected override async Task BeforeFirstPassAsync(CancellationToken stoppingToken)
    {
        // The in-memory transport lost whatever was on its way to the archiver when the process stopped.
        _republishBefore = pipeline.Value.Transport == TransportKind.InMemory ? Time.GetUtcNow() : null;
        await PlaceCommittedFilesAsync(stoppingToken);
    }

    /// <summary>Moves a committed file into place, unless another instance (starting up) just did.</summary>
    private async Task PlaceIntoNameAsync(string uncommitted, string name, CancellationToken cancellationToken)
    {
        try
        {
            await areas.Output.MoveAsync(uncommitted, name, cancellationToken);
        }
        catch (IOException)
        {
            if (!await areas.Output.ExistsAsync(name, cancellationToken) || await areas.Output.ExistsAsync(uncommitted, cancellationToken))
            {
                throw;
            }
        }
    }

    /// <summary>A merged file is written under this name and takes its own once its record is committed.</summary>
    public static string UncommittedName(string name) => $"{name}{StorageArea.TemporaryMarker}uncommitted";

    /// <summary>
    /// A merger killed between committing a merged file and moving it into place left the file under its uncommitted
    /// name: it is moved now; if it is gone meanwhile (swept as abandoned), it is made again from its inputs.
    /// </summary>
    private async Task PlaceCommittedFilesAsync(CancellationToken cancellationToken)
    {
        foreach (var merged in await merges.ListUnarchivedAsync(Time.GetUtcNow(), cancellationToken))
        {
            var uncommitted = UncommittedName(merged.Name);
            if (await areas.Output.ExistsAsync(merged.Name, cancellationToken))
            {
                continue;
            }
            if (await areas.Output.ExistsAsync(uncommitted, cancellationToken))
            {
                Logger.LogWarning("Merged file {MergedName} was committed but not moved into place (the merger stopped in between); moving it now", merged.Name);
                await PlaceIntoNameAsync(uncommitted, merged.Name, cancellationToken);
                continue;
            }
            Logger.LogWarning("Merged file {MergedName} was committed but its file is gone (the merger stopped before moving it into place); it is made again from its inputs", merged.Name);
            await bus.PublishBoundedAsync(new RemakeMergedFile(merged.Name, merged.Campaign, merged.Dataset, "committed but never moved into place"), cancellationToken);
        }
    }

    protected override async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        var now = Time.GetUtcNow();
        if (_republishBefore is not null || now - _lastRepublish > TimeSpan.FromSeconds(options.Value.RepublishAfterSeconds) / 4)
        {
            await RepublishUnarchivedAsync(_republishBefore ?? now.AddSeconds(-options.Value.RepublishAfterSeconds), stoppingToken);
            _republishBefore = null;
            _lastRepublish = now;
        }
        // A paused merger neither takes outputs (its queue is held back) nor closes merged files.
        while (!pause.IsPaused(MergeOutputConsumerDefinition.QueueName) && await MergeReadyBuffersAsync(stoppingToken) > 0)
        {
        }
    }

    /// <summary>Merges every buffer that is due; returns how many merged files were made.</summary>
    public async Task<int> MergeReadyBuffersAsync(CancellationToken cancellationToken)
    {
        var made = 0;
        var now = Time.GetUtcNow();
        // Outputs wait in the unmerged area: when it is full, reconstruction is held back until merges free it.
        var pressure = flow.IsBlocked(StorageOptions.Unmerged);
        foreach (var buffer in await merges.ListBuffersAsync(cancellationToken))
        {
            var campaign = (await campaigns.GetAsync(buffer.Campaign, cancellationToken))?.Definition;
            var target = campaign?.EffectiveMergeTargetBytes ?? CampaignDefinition.DefaultMergeTargetBytes;
            var pending = await merges.ListPendingAsync(buffer.Campaign, buffer.Dataset, options.Value.MaxInputsPerMerge, cancellationToken);
            var (ready, strict) = await InOrderAsync(buffer, campaign?.Ordering, pending, pressure, now, cancellationToken);
            if (ready.Count == 0)
            {
                continue;
            }
            var due = ready.Sum(o => o.Size) >= target
                || pressure
                || now - buffer.NewestAddedAt >= TimeSpan.FromSeconds(options.Value.FlushIdleSeconds)
                || now - buffer.OldestAddedAt >= TimeSpan.FromSeconds(options.Value.MaxWaitSeconds)
                || (now - buffer.NewestAddedAt >= TimeSpan.FromSeconds(options.Value.RunEndGraceSeconds)
                    && await RunsEndedAsync(buffer, pending, cancellationToken));
            if (due && await MergeOneAsync(buffer, ready, target, cancellationToken) is { } mergedThrough)
            {
                made++;
                // Merged in strict order: every run up to this one was complete.
                if (strict && _mergedThrough.TryGetValue((buffer.Campaign, buffer.Dataset), out var known) && mergedThrough > known)
                {
                    _mergedThrough[(buffer.Campaign, buffer.Dataset)] = mergedThrough;
                }
            }
        }
        return made;
    }

    /// <summary>
    /// The outputs that may be merged now. Relaxed: all of them. Strict: only those of runs older than the oldest run
    /// with a file still to reconstruct, so that no late file can ever sort before a merged file already made. Outputs
    /// that wait too long for earlier runs raise an alert; when the unmerged area is full and nothing may be merged, order is given
    /// up for this merge (with an alert) rather than stopping production.
    /// </summary>
    private async Task<(IReadOnlyList<PendingOutput> Ready, bool Strict)> InOrderAsync(DatasetBuffer buffer, MergeOrdering? campaignOrdering, IReadOnlyList<PendingOutput> pending, bool pressure, DateTimeOffset now, CancellationToken cancellationToken)
    {
        var key = $"merge-order:{buffer.Campaign}/{buffer.Dataset}";
        if (pending.Count == 0 || flow.OrderingOf(buffer.Dataset, campaignOrdering) == MergeOrdering.Relaxed)
        {
            // An operator relaxing a waiting dataset ends its wait, and its alert.
            await ResolveAsync(key, now, cancellationToken);
            return (pending, false);
        }
        var oldestOpen = await ledger.OldestOpenRunAsync(buffer.Campaign, cancellationToken);
        var ready = pending.TakeWhile(o => oldestOpen is null || o.Run < oldestOpen).ToList();
        // A file past reconstruction may still have outputs on their way to this buffer: a run is complete only
        // once every output its files reported has arrived. That holds for runs with nothing pending yet too, so
        // every run from the highest already merged up to the highest ready one is checked.
        var incomplete = ready.Count == 0 ? null : await FirstIncompleteRunAsync(buffer, ready[^1].Run, cancellationToken);
        if (incomplete is not null)
        {
            oldestOpen = incomplete;
            ready = [.. ready.TakeWhile(o => o.Run < incomplete)];
        }
        if (ready.Count > 0)
        {
            await ResolveAsync(key, now, cancellationToken);
            return (ready, true);
        }
        var waited = now - pending.Min(o => o.AddedAt);
        if (oldestOpen is { } run && waited >= TimeSpan.FromSeconds(options.Value.LedgerResendSeconds))
        {
            await AskForReportsAsync(buffer.Campaign, run, now, cancellationToken);
        }
        if (pressure)
        {
            await RaiseAsync(key, $"Dataset {buffer.Dataset} of {buffer.Campaign}: the unmerged area is full while its outputs wait for run {oldestOpen}; merging them out of order to keep production going", now, cancellationToken);
            return (pending, false);
        }
        if (waited >= TimeSpan.FromSeconds(flow.Configured.StrictWaitSeconds))
        {
            await RaiseAsync(key, $"Dataset {buffer.Dataset} of {buffer.Campaign} (strict order) has waited {waited.TotalMinutes:F0} min for run {oldestOpen} to be reconstructed", now, cancellationToken);
        }
        return ([], true);
    }

    private async Task<int?> FirstIncompleteRunAsync(DatasetBuffer buffer, int throughRun, CancellationToken cancellationToken)
    {
        // Every run up to the highest merged one was complete when it was merged: the check starts there. Kept in
        // memory once read, and raised by this instance's merges (another instance's make it only more cautious).
        var key = (buffer.Campaign, buffer.Dataset);
        if (!_mergedThrough.TryGetValue(key, out var fromRun))
        {
            fromRun = await merges.HighestMergedRunAsync(buffer.Campaign, buffer.Dataset, cancellationToken) ?? 0;
            _mergedThrough[key] = fromRun;
        }
        var reported = await ledger.CountReportedOutputsAsync(buffer.Campaign, buffer.Dataset, fromRun, throughRun, cancellationToken);
        var received = await merges.CountReceivedOutputsAsync(buffer.Campaign, buffer.Dataset, fromRun, throughRun, cancellationToken);
        return reported.Keys.Order().Cast<int?>().FirstOrDefault(run => received.GetValueOrDefault(run!.Value) < reported[run.Value]);
    }

    /// <summary>Asks the files of a run the dataset waits on to report again, at most once per <see cref="MergerOptions.LedgerResendSeconds"/>.</summary>
    private async Task AskForReportsAsync(string campaign, int run, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_resendAsked.TryGetValue((campaign, run), out var asked) && now - asked < TimeSpan.FromSeconds(options.Value.LedgerResendSeconds))
        {
            return;
        }
        _resendAsked[(campaign, run)] = now;
        foreach (var old in _resendAsked.Where(a => now - a.Value > TimeSpan.FromHours(1)).Select(a => a.Key).ToList())
        {
            _resendAsked.Remove(old);
        }
        Logger.LogInformation("Outputs of {Campaign} have waited on run {Run} for a while: its files are asked to report again", campaign, run);
        await bus.PublishBoundedAsync(new ResendRunFileProgress(campaign, run), cancellationToken);
    }

    private async Task ResolveAsync(string key, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_waitingAlerts.Remove(key))
        {
            await alerts.ResolveAsync(key, cancellationToken);
        }
    }

    private async Task RaiseAsync(string key, string message, DateTimeOffset now, CancellationToken cancellationToken)
    {
        if (_waitingAlerts.Add(key))
        {
            Logger.LogWarning("{Alert}", message);
        }
        await alerts.RaiseAsync(key, "merge-order", "warning", message, cancellationToken);
    }

    /// <summary>Every run with outputs waiting in this buffer has ended: nothing more is coming for it.</summary>
    private async Task<bool> RunsEndedAsync(DatasetBuffer buffer, IReadOnlyList<PendingOutput> pending, CancellationToken cancellationToken)
    {
        var runs = pending.Select(o => o.Run).Distinct().ToList();
        var progress = await ledger.RunProgressAsync(buffer.Campaign, runs, cancellationToken);
        return runs.All(run => progress.TryGetValue(run, out var p) && p.Ended);
    }

    /// <summary>Merges the first outputs of <paramref name="ready"/> up to the target size; returns the highest run merged, or null if nothing was.</summary>
    private async Task<int?> MergeOneAsync(DatasetBuffer buffer, IReadOnlyList<PendingOutput> ready, long target, CancellationToken cancellationToken)
    {
        var batch = new List<PendingOutput>();
        long bytes = 0;
        foreach (var output in ready)
        {
            if (batch.Count > 0 && bytes + output.Size > target)
            {
                break;
            }
            batch.Add(output);
            bytes += output.Size;
        }
        if (batch.Count == 0)
        {
            return null;
        }

        // The merged file's own trace, linked to each of its files' traces: its archive follows in it.
        using var span = FileTracing.StartShared($"merge {buffer.Campaign}/{buffer.Dataset}", batch.Select(o => o.FileId));
        var started = Stopwatch.GetTimestamp();
        var createdAt = Time.GetUtcNow();
        var name = $"{buffer.Campaign}/{buffer.Dataset}/{buffer.Dataset}_run{batch.Min(o => o.Run):D6}-{batch.Max(o => o.Run):D6}_{createdAt:yyyyMMddHHmmssfff}_{Guid.NewGuid().ToString("N")[..6]}.evt";
        // The merged file waits in the output area for the archive: none is made while the output area is full.
        if (!await gate.TryAdmitAsync(StorageOptions.Output, name, bytes, cancellationToken))
        {
            return null;
        }
        long size;
        uint adler;
        long events;
        var ranges = new EventRange[batch.Count];
        // The file takes its name only once its record is committed: a merger killed in between leaves a temporary file
        // (swept) or a committed record whose file is moved into place when the merger starts again, never a file
        // under a final name that nothing knows.
        var uncommitted = UncommittedName(name);
        try
        {
            // Inputs are verified while they are merged: a corrupted output never reaches the archive.
            (size, adler, events) = await MergedFileWriter.WriteAsync(areas.Unmerged,
                [.. batch.Select(o => new MergeInput(o.Name, o.Size, o.Adler32, o.Events))], areas.Output, uncommitted, ranges, cancellationToken);
        }
        catch
        {
            // Nothing became visible under the name (the writer removes its temporary file): give the room back.
            await gate.ReleaseAsync(StorageOptions.Output, name);
            throw;
        }
        await gate.ReplaceAsync(StorageOptions.Output, name, [new AreaFile(name, size)], cancellationToken);
        // Before the commit, so that no archiver can have read the file yet.
        // The fault suite flips a byte of a file on this host's disk; a remote output area is not corrupted from here.
        var corrupted = false;
        if (areas.Output is LocalArea outputFolder && FaultInjection.ShouldCorruptMerged())
        {
            corrupted = true;
            FaultInjection.FlipByte(outputFolder.PathOf(uncommitted));
        }
        var manifest = await ManifestAsync(name, buffer, batch, ranges, size, Adler32Checksum.Format(adler), events, cancellationToken);
        var record = new MergedFileRecord(name, buffer.Campaign, buffer.Dataset, size, Adler32Checksum.Format(adler), events, false, createdAt, createdAt, manifest.ToJson());
        if (await merges.CommitMergeAsync(record, [.. batch.Select(o => o.OutputId)], cancellationToken) is not { } committed)
        {
            // Another merger took some of these outputs first; its file stands, this one goes.
            await areas.Output.DeleteAsync(uncommitted, CancellationToken.None);
            await gate.ReleaseAsync(StorageOptions.Output, name);
            return null;
        }
        await PlaceIntoNameAsync(uncommitted, name, cancellationToken);
        await report.CompletedAsync(PipelineMetrics.Merge, buffer.Campaign, size, Stopwatch.GetElapsedTime(started), CancellationToken.None);
        Logger.LogInformation("Merged {Count} outputs of {Dataset} into {MergedName} ({Size} bytes, {Events} events)", batch.Count, buffer.Dataset, name, size, events);
        if (corrupted)
        {
            Logger.LogWarning(FaultInjection.CorruptedMergedMessage + " {MergedName}", name);
        }

        await bus.PublishBoundedAsync(ToArchiveRequest(committed, batch), cancellationToken);
        foreach (var group in batch.GroupBy(o => o.FileId))
        {
            var first = group.First();
            await bus.PublishBoundedAsync(new OutputsMerged(group.Key, first.Run, first.Stream, first.Campaign, name, [.. group.Select(o => o.OutputId)]), cancellationToken);
        }
        // The inputs stay in the unmerged area until the merged file is archived (see OutputsArchivedConsumer): a merged file
        // corrupted before its copies verify is made again from them.
        return batch.Max(o => o.Run);
    }

    /// <summary>The merged file's manifest: its sources with their raw files' checksums and event ranges, sealed by a digest.</summary>
    private async Task<MergeManifest> ManifestAsync(string name, DatasetBuffer buffer, IReadOnlyList<PendingOutput> batch, EventRange[] ranges,
        long size, string adler32, long events, CancellationToken cancellationToken)
    {
        // The raw file's checksum came with each output (outputs received before it did have none).
        var definition = (await campaigns.GetAsync(buffer.Campaign, cancellationToken))?.Definition;
        var sources = batch.Select((o, i) => new ManifestSource(o.RawName, o.RawAdler32 ?? "", o.FileId, o.Run, o.Stream, o.Section, o.OutputId,
            ranges[i].Count, ranges[i].First.Event, ranges[i].Last.Event)).ToList();
        return new MergeManifest(MergeManifest.CurrentVersion, name, buffer.Campaign, buffer.Dataset, definition?.Release?.Version, definition?.CalibrationTag,
            size, adler32, events, sources).Sealed();
    }

    private async Task RepublishUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken)
    {
        foreach (var merged in await merges.ListUnarchivedAsync(updatedBefore, cancellationToken))
        {
            var outputs = await merges.ListOutputsOfAsync(merged.Name, cancellationToken);
            Logger.LogWarning("Merged file {MergedName} is not archived yet; sending it to the archiver again", merged.Name);
            await bus.PublishBoundedAsync(ToArchiveRequest(merged, outputs), cancellationToken);
        }
    }

    /// <summary>What the archiver is told of a merged file: all it keeps of it, so that it reads nothing of the merger's.</summary>
    public static ArchiveMergedFile ToArchiveRequest(MergedFileRecord merged, IEnumerable<PendingOutput> outputs) =>
        new(merged.Name, merged.Dataset, merged.Campaign, merged.Size, merged.Adler32, merged.Events,
            [.. outputs.Select(o => new MergedSource(o.FileId, o.Run, o.Stream, o.RawName, o.OutputId, o.Section))],
            merged.Sequence, merged.CreatedAt, merged.Manifest);
}
