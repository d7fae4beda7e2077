using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;
using Pipeline.Reconstruction.Batch;
using Pipeline.SampleExperiment;

namespace Pipeline.Reconstruction;

/// <summary>What a job's folder keeps of the request it was run for.</summary>
public sealed record JobRequest(ReconstructFile Message, int TimeLimitSeconds);

/// <summary>A batch job taken over from the batch system: its folder in scratch, its id, its time limit.</summary>
public sealed record AdoptedJob(string JobDirectory, long BatchJobId, int TimeLimitSeconds);

public enum AdoptionOutcome
{
    Adopted,

    /// <summary>This process follows the attempt already.</summary>
    AlreadyFollowed,

    /// <summary>Every slot is busy: tried again later.</summary>
    NoFreeSlot,

    /// <summary>A live worker holds the lease: tried again later, in case it dies.</summary>
    HeldElsewhere,

    /// <summary>The attempt is stale or the file moved on: the job's result would be ignored.</summary>
    Superseded,
}

public enum DispatchOutcome
{
    /// <summary>The lease was granted and the job runs in the background.</summary>
    Started,

    /// <summary>This attempt already runs in this process (a repeated delivery).</summary>
    AlreadyRunning,

    /// <summary>Every slot stayed busy for the whole wait: the request should go back to the queue.</summary>
    NoFreeSlot,

    /// <summary>The orchestrator refused the lease: the attempt is stale or another worker holds it.</summary>
    Refused,
}

/// <summary>
/// Runs reconstruction attempts in this process's slots. A job starts only after the worker has claimed
/// the attempt's lease from the orchestrator (so two workers never run one file at once); it then runs
/// in the background, renewing the lease, while the request message is already acknowledged — a job may
/// last hours without holding a broker delivery open. A worker that dies leaves a lease that expires; the
/// orchestrator's watchdog then gives the file a new attempt. Each execution writes into its own scratch
/// folder; the orchestrator accepts the outputs of the current attempt and lease holder only.
/// </summary>
public sealed class ReconstructionWorker(
    StorageAreas areas,
    IReleaseRunner runner,
    IBus bus,
    CampaignDirectory campaigns,
    CampaignWallTimes wallTimes,
    IOptions<ReconstructionOptions> options,
    IOptions<PipelineOptions> pipeline,
    IHostApplicationLifetime lifetime,
    AreaGate gate,
    StageReporter report,
    ILogger<ReconstructionWorker> logger) : IDisposable
{
    public const string JobLogName = "job.log";

    private readonly SemaphoreSlim _slots = new(options.Value.EffectiveSlots, options.Value.EffectiveSlots);
    private readonly ConcurrentDictionary<(Guid FileId, int Attempt), byte> _running = new();

    /// <summary>Jobs running now in this process.</summary>
    public int Busy => options.Value.EffectiveSlots - _slots.CurrentCount;

    public Task<DispatchOutcome> DispatchAsync(ReconstructFile message, CancellationToken cancellationToken) =>
        InSlotAsync((message.FileId, message.Attempt), TimeSpan.FromSeconds(options.Value.SlotWaitSeconds), DispatchOutcome.AlreadyRunning, DispatchOutcome.NoFreeSlot, async () =>
        {
            // The outputs go to scratch, where they wait for the merger: a job starts only when scratch has room,
            // reserved by the size of its input until its real outputs are known.
            var input = message.CachedName is { } cached ? (await areas.Cache.StatAsync(cached, cancellationToken))?.Size ?? 0 : 0;
            await gate.AdmitAsync(StorageOptions.Scratch, AttemptFolder(message), input, cancellationToken);
            var worker = pipeline.Value.EffectiveInstanceName;
            var claim = await Claim(message, worker, renewal: false, cancellationToken);
            if (!claim.Granted)
            {
                logger.LogInformation("Not running {FileId} attempt {Attempt}: {Reason}", message.FileId, message.Attempt, claim.Reason);
                await gate.ReleaseAsync(StorageOptions.Scratch, AttemptFolder(message));
                return (DispatchOutcome.Refused, null);
            }
            return (DispatchOutcome.Started, () => RunJobAsync(message, worker, claim.LeaseSeconds, (message.FileId, message.Attempt)));
        }, cancellationToken);

    /// <summary>
    /// Takes over a batch job found in the batch system that no worker of this process follows: one submitted before
    /// this worker restarted, or by a worker that died. It is claimed like a new attempt (granted once the holder's
    /// lease ran out, or at once to the same worker name), then followed to its end and reported as any job.
    /// </summary>
    public Task<AdoptionOutcome> AdoptAsync(JobRequest request, string jobDirectory, long batchJobId, CancellationToken cancellationToken)
    {
        var message = request.Message;
        return InSlotAsync((message.FileId, message.Attempt), TimeSpan.Zero, AdoptionOutcome.AlreadyFollowed, AdoptionOutcome.NoFreeSlot, async () =>
        {
            var worker = pipeline.Value.EffectiveInstanceName;
            var claim = await Claim(message, worker, renewal: false, cancellationToken, batchJobId);
            if (!claim.Granted)
            {
                // Held by a live worker: looked at again later. Anything else (a stale attempt, a file already done)
                // is for good: the job's result would be ignored.
                return (claim.Reason?.StartsWith("lease held by", StringComparison.Ordinal) == true ? AdoptionOutcome.HeldElsewhere : AdoptionOutcome.Superseded, null);
            }
            logger.LogInformation("Adopted batch job {JobId} running {FileId} attempt {Attempt}", batchJobId, message.FileId, message.Attempt);
            await gate.AdmitAsync(StorageOptions.Scratch, AttemptFolder(message), 0, cancellationToken);
            var adopted = new AdoptedJob(jobDirectory, batchJobId, request.TimeLimitSeconds);
            return (AdoptionOutcome.Adopted, () => RunJobAsync(message, worker, claim.LeaseSeconds, (message.FileId, message.Attempt), adopted));
        }, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="start"/> holding the attempt's key (no second run of one attempt in this process) and a slot.
    /// When it returns a job, the job runs in the background and keeps both until it ends; otherwise both are let go.
    /// </summary>
    private async Task<T> InSlotAsync<T>((Guid FileId, int Attempt) key, TimeSpan slotWait, T alreadyRunning, T noFreeSlot,
        Func<Task<(T Outcome, Func<Task>? Job)>> start, CancellationToken cancellationToken)
    {
        if (!_running.TryAdd(key, 0))
        {
            return alreadyRunning;
        }
        var started = false;
        try
        {
            if (!await _slots.WaitAsync(slotWait, cancellationToken))
            {
                return noFreeSlot;
            }
            try
            {
                var (outcome, job) = await start();
                if (job is not null)
                {
                    started = true;
                    _ = Task.Run(job, CancellationToken.None);
                }
                return outcome;
            }
            finally
            {
                if (!started)
                {
                    _slots.Release();
                }
            }
        }
        finally
        {
            if (!started)
            {
                _running.TryRemove(key, out _);
            }
        }
    }

    private async Task RunJobAsync(ReconstructFile message, string worker, int leaseSeconds, (Guid, int) key, AdoptedJob? adopted = null)
    {
        using var busy = report.Busy(PipelineMetrics.Reconstruction);
        // The job outlives the consumption of its message: it is a step of the file's trace of its own.
        using var span = FileTracing.StartStep("reconstruction job", "reconstruction", message, System.Diagnostics.ActivityKind.Internal);
        try
        {
            await RunAttemptAsync(message, worker, leaseSeconds, lifetime.ApplicationStopping, adopted);
        }
        catch (OperationCanceledException) when (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // Shutting down: the lease runs out and the watchdog gives the file a new attempt.
            logger.LogWarning("Stopped {FileId} attempt {Attempt} at shutdown", message.FileId, message.Attempt);
        }
        catch (Exception ex)
        {
            logger.LogError(ex, "Reconstruction of {FileId} attempt {Attempt} broke down on this worker", message.FileId, message.Attempt);
            FileTracing.Outcome($"error: {ex.GetType().Name}");
            await PublishSafely(new ReconstructionFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker,
                $"worker error: {ex.Message}", null, ""));
        }
        finally
        {
            _running.TryRemove(key, out _);
            _slots.Release();
        }
    }

    private async Task PublishSafely<T>(T message)
        where T : class
    {
        try
        {
            await bus.PublishBoundedAsync(message, CancellationToken.None);
        }
        catch (Exception ex)
        {
            // The lease will run out unrenewed and the watchdog will give the file a new attempt.
            logger.LogError(ex, "Could not report {MessageType}", typeof(T).Name);
        }
    }

    /// <summary>The scratch folder of one attempt; each execution of it gets a fresh folder inside, and the attempt's room in scratch is reserved under this name.</summary>
    public static string AttemptFolder(ReconstructFile message) => $"jobs/{message.Campaign}/run{message.Run:D6}/{message.FileId:N}/attempt-{message.Attempt}";

    private async Task RunAttemptAsync(ReconstructFile message, string worker, int leaseSeconds, CancellationToken stopping, AdoptedJob? adopted = null)
    {
        // A fresh folder per execution: a repeated attempt never writes over what an earlier execution left. An adopted
        // batch job goes on in the folder it was submitted from.
        var jobDirectory = adopted?.JobDirectory ?? $"{AttemptFolder(message)}/{Guid.NewGuid().ToString("N")[..8]}";
        var jobPath = areas.Scratch.PathOf(jobDirectory);
        var outputDirectory = $"{jobDirectory}/out";
        Directory.CreateDirectory(areas.Scratch.PathOf(outputDirectory));
        var logPath = Path.Combine(jobPath, JobLogName);

        var stopwatch = Stopwatch.StartNew();
        var lease = KeepLease(message, worker, leaseSeconds, stopping);
        ReleaseOutcome outcome;
        string? problem;
        int timeLimitSeconds;
        try
        {
            (outcome, problem, timeLimitSeconds) = adopted is null
                ? await RunReleaseAsync(message, jobPath, outputDirectory, logPath, lease.Lost)
                : await FollowAdoptedAsync(message, adopted, jobPath, logPath, lease.Lost);
        }
        catch (OperationCanceledException) when (lease.Lost.IsCancellationRequested && !stopping.IsCancellationRequested)
        {
            logger.LogWarning("Stopped {FileId} attempt {Attempt}: the lease was lost, another attempt owns the file", message.FileId, message.Attempt);
            areas.Scratch.DeleteDirectory(jobDirectory);
            await gate.ReleaseAsync(StorageOptions.Scratch, AttemptFolder(message));
            return;
        }
        finally
        {
            await lease.DisposeAsync();
            // A fetched input is the cache's copy, not the job's: it is not kept with the job's logs. A batch job left
            // running at shutdown still reads it, and whoever adopts the job removes it.
            var fetched = Path.Combine(jobPath, FetchedInputFolder);
            if (Directory.Exists(fetched) && !(runner.JobsOutliveWorker && stopping.IsCancellationRequested))
            {
                Directory.Delete(fetched, recursive: true);
            }
        }

        var logFiles = Directory.EnumerateFiles(jobPath).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        await bus.PublishBoundedAsync(new CollectJobLogs(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, jobDirectory, logFiles), CancellationToken.None);

        if (problem is null)
        {
            var outputs = await DescribeOutputsAsync(message, outputDirectory, stopping);
            if (outputs.Problem is null)
            {
                // The release's manifest has been read into the outputs' description; left behind, it would stay in scratch for ever.
                areas.Scratch.Delete($"{outputDirectory}/{SampleReconstruction.ManifestName}");
                logger.LogInformation("Reconstructed {FileId} attempt {Attempt}: {Outputs} outputs in {Seconds:F1}s", message.FileId, message.Attempt, outputs.Files.Count, stopwatch.Elapsed.TotalSeconds);
                await report.CompletedAsync(PipelineMetrics.Reconstruction, message.Campaign, outputs.Files.Sum(f => f.Size), stopwatch.Elapsed, CancellationToken.None);
                // The outputs take over the attempt's reservation before anyone is told of them, so the merger's release finds them.
                await gate.ReplaceAsync(StorageOptions.Scratch, AttemptFolder(message), [.. outputs.Files.Select(f => new AreaFile(f.Name, f.Size))], CancellationToken.None);
                FileTracing.Outcome($"reconstructed: {outputs.Files.Count} outputs");
                await bus.PublishBoundedAsync(new FileReconstructed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker, outputs.Files, stopwatch.Elapsed.TotalSeconds), CancellationToken.None);
                await RemoveInputAsync(message);
                return;
            }
            problem = outputs.Problem;
        }

        report.Failed(PipelineMetrics.Reconstruction, problem);
        logger.LogWarning("Reconstruction of {FileId} attempt {Attempt} failed: {Reason}", message.FileId, message.Attempt, problem);
        FileTracing.Outcome($"failed: {problem}");
        areas.Scratch.DeleteDirectory(outputDirectory);
        await gate.ReleaseAsync(StorageOptions.Scratch, AttemptFolder(message));
        // A new attempt stages the file again; a file that failed for good must not hold cache room for ever.
        await RemoveInputAsync(message);
        await bus.PublishBoundedAsync(new ReconstructionFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker,
            problem, outcome.ExitCode, outcome.LogTail, outcome.SiteFailure, outcome.TimedOut ? timeLimitSeconds : null), CancellationToken.None);
    }

    private async Task RemoveInputAsync(ReconstructFile message)
    {
        if (message.CachedName is not { } cached)
        {
            return;
        }
        await areas.Cache.DeleteAsync(cached, CancellationToken.None);
        await gate.ReleaseAsync(StorageOptions.Cache, cached);
    }

    /// <summary>The request a job was run for, kept in its folder (what a restarted worker adopts a batch job from).</summary>
    public const string RequestName = "request.json";

    /// <summary>The folder in a job's folder where an input from a remote cache is fetched to; it goes when the release ends.</summary>
    public const string FetchedInputFolder = "input";

    /// <summary>
    /// The path the release reads its input from, or why it cannot run. The copy was verified while it was staged;
    /// bytes at rest can still change (a bad disk, a bad cable, a bad neighbour), and a release given a corrupt input
    /// makes wrong outputs with good checksums, so the copy is checked once more before the release reads it; a bad
    /// one fails the attempt, and the next is staged anew. A cache on a remote endpoint is fetched into the job's
    /// folder (checked on the way in); a cache in a folder of this host is read where it is.
    /// </summary>
    private async Task<(string Path, string? Problem)> InputOfAsync(ReconstructFile message, string jobPath, CancellationToken cancellationToken)
    {
        if (message.CachedName is not { } cached)
        {
            return ("", null);
        }
        if (!await areas.Cache.ExistsAsync(cached, cancellationToken))
        {
            return ("", $"staged input {cached} is missing from the cache");
        }
        string path;
        long size;
        uint adler;
        if (areas.Cache is LocalArea folder)
        {
            path = folder.PathOf(cached);
            if (message.InputAdler32 is null || !options.Value.VerifyInput)
            {
                return (path, null);
            }
            (size, adler) = await folder.ChecksumAsync(cached, cancellationToken);
        }
        else
        {
            path = Path.Combine(jobPath, FetchedInputFolder, cached[(cached.LastIndexOf('/') + 1)..]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var source = await areas.Cache.OpenReadAsync(cached, cancellationToken);
            await using var target = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, StreamingCopy.FileBufferSize, FileOptions.Asynchronous);
            await using var counted = new ChecksummingStream(target, leaveOpen: true);
            await StreamingCopy.CopyOverlappedAsync(source, counted, cancellationToken);
            (size, adler) = (counted.Length, counted.Adler32);
            if (message.InputAdler32 is null)
            {
                return (path, null);
            }
        }
        return size == message.InputSize && Adler32Checksum.Same(Adler32Checksum.Format(adler), message.InputAdler32)
            ? (path, null)
            : (path, $"staged input {cached} is corrupt: catalogued {message.InputSize} bytes adler32 {message.InputAdler32}, cache holds {size} bytes adler32 {Adler32Checksum.Format(adler)}");
    }

    private async Task<(ReleaseOutcome Outcome, string? Problem, int TimeLimitSeconds)> RunReleaseAsync(ReconstructFile message, string jobPath, string outputDirectory, string logPath, CancellationToken cancellationToken)
    {
        // The release comes from the campaign as stored, never from the request: a request names it only to be checked.
        var campaign = (await campaigns.GetAsync(message.Campaign, cancellationToken))?.Definition;
        if (campaign?.Release is not { Version: { } version, Executable: { } executable } release)
        {
            return (new ReleaseOutcome(null, false, "", null), $"campaign {message.Campaign} is not known", 0);
        }
        if (message.ReleaseVersion != version)
        {
            return (new ReleaseOutcome(null, false, "", null), $"release {message.ReleaseVersion} is not the approved release ({version}) of campaign {message.Campaign}", 0);
        }
        var (inputPath, inputProblem) = await InputOfAsync(message, jobPath, cancellationToken);
        if (inputProblem is not null)
        {
            return (new ReleaseOutcome(null, false, "", null), inputProblem, 0);
        }
        var conditions = campaign.IsMonteCarlo ? message.RunConditions ?? "" : "";
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["input"] = inputPath,
            ["outdir"] = areas.Scratch.PathOf(outputDirectory),
            ["jobdir"] = jobPath,
            ["run"] = message.Run.ToString(CultureInfo.InvariantCulture),
            ["stream"] = message.Stream,
            ["section"] = message.Section.ToString(CultureInfo.InvariantCulture),
            ["campaign"] = message.Campaign,
            ["attempt"] = message.Attempt.ToString(CultureInfo.InvariantCulture),
            ["datasets"] = SampleReconstruction.FormatDatasets(message.Datasets.Select(d => (d.Name, d.TriggerMask))),
            ["release"] = version,
            ["appdir"] = AppContext.BaseDirectory.TrimEnd('/'),
            ["calibration"] = message.CalibrationTag ?? "",
            ["events"] = message.Events.ToString(CultureInfo.InvariantCulture),
            ["seed"] = SimulationSeed(message).ToString(CultureInfo.InvariantCulture),
            ["conditions"] = conditions,
        };
        // The campaign's limit follows its measured run times; a file retried after a time-out, or given a limit by an
        // operator (a file with unusually many events), carries its own.
        var timeoutSeconds = message.TimeoutSeconds ?? (await wallTimes.LimitAsync(message.Campaign, release.EffectiveTimeoutSeconds, cancellationToken)).Seconds;
        ReleaseJob job;
        try
        {
            job = new ReleaseJob(
                ArgumentTemplate.Expand(executable, values),
                [.. (release.Arguments ?? []).Select(a => ArgumentTemplate.Expand(a, values))],
                jobPath,
                logPath,
                TimeSpan.FromSeconds(timeoutSeconds),
                message.FileId,
                message.Attempt,
                message.Campaign,
                campaign.Batch);
        }
        catch (FormatException ex)
        {
            return (new ReleaseOutcome(null, false, "", null), ex.Message, 0);
        }
        // What was asked, kept with the job: a worker that restarts while the batch system still runs the job adopts it from this.
        await File.WriteAllTextAsync(Path.Combine(jobPath, RequestName), JsonSerializer.Serialize(new JobRequest(message, timeoutSeconds)), cancellationToken);
        var outcome = await runner.RunAsync(job, cancellationToken);
        return (outcome, ProblemOf(outcome, timeoutSeconds), timeoutSeconds);
    }

    /// <summary>Follows a batch job another worker (or this one before a restart) submitted, to its end.</summary>
    private async Task<(ReleaseOutcome Outcome, string? Problem, int TimeLimitSeconds)> FollowAdoptedAsync(
        ReconstructFile message, AdoptedJob adopted, string jobPath, string logPath, CancellationToken cancellationToken)
    {
        var job = new ReleaseJob("", [], jobPath, logPath, TimeSpan.FromSeconds(adopted.TimeLimitSeconds), message.FileId, message.Attempt, message.Campaign);
        var outcome = await runner.FollowAsync(job, adopted.BatchJobId, cancellationToken);
        return (outcome, ProblemOf(outcome, adopted.TimeLimitSeconds), adopted.TimeLimitSeconds);
    }

    private static string? ProblemOf(ReleaseOutcome outcome, int timeoutSeconds) => outcome switch
    {
        { SiteFailure: true, BatchState: "CANCELLED", BatchReason: { } reason } when reason.StartsWith(SlurmQueueKeeper.CancelledBecause, StringComparison.Ordinal) =>
            $"batch job {outcome.BatchJobId} {reason}",
        { SiteFailure: true } => $"the site failed batch job {outcome.BatchJobId}: {outcome.BatchState} ({outcome.BatchReason ?? outcome.FirstErrorLine}) on {NodeOf(outcome)}",
        { BatchState: "OUT_OF_MEMORY" } => $"batch job {outcome.BatchJobId} ran out of memory on {NodeOf(outcome)}",
        { TimedOut: true } => $"timed out after {timeoutSeconds}s",
        { ExitCode: 0 } => null,
        { ExitCode: null } => outcome.FirstErrorLine ?? "the release could not be started",
        _ => $"exit code {outcome.ExitCode}" + (outcome.FirstErrorLine is { } line ? $": {line}" : ""),
    };

    private static string NodeOf(ReleaseOutcome outcome) => string.IsNullOrEmpty(outcome.BatchNode) ? "no node" : $"node {outcome.BatchNode}";

    /// <summary>
    /// The seed of a simulated file: the same for every attempt of it (a retry generates the same events), and
    /// different for every file, campaign and run.
    /// </summary>
    public static int SimulationSeed(ReconstructFile message) =>
        (int)(Adler32Checksum.Of(System.Text.Encoding.UTF8.GetBytes($"{message.Campaign}/{message.FileId:N}")) & int.MaxValue);

    private async Task<(IReadOnlyList<OutputFile> Files, string? Problem)> DescribeOutputsAsync(ReconstructFile message, string outputDirectory, CancellationToken cancellationToken)
    {
        var manifestName = $"{outputDirectory}/{SampleReconstruction.ManifestName}";
        if (!areas.Scratch.Exists(manifestName))
        {
            return ([], $"the release wrote no {SampleReconstruction.ManifestName}");
        }
        List<OutputManifestEntry>? manifest;
        try
        {
            await using var stream = areas.Scratch.OpenRead(manifestName);
            manifest = await JsonSerializer.DeserializeAsync<List<OutputManifestEntry>>(stream, SampleReconstruction.Json, cancellationToken);
        }
        catch (JsonException ex)
        {
            return ([], $"{SampleReconstruction.ManifestName} is not valid: {ex.Message}");
        }
        var requested = message.Datasets.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        var files = new List<OutputFile>();
        foreach (var entry in manifest ?? [])
        {
            if (!requested.Contains(entry.Dataset) || AreaNames.Problem(entry.File) is not null || entry.File.Contains('/', StringComparison.Ordinal))
            {
                return ([], $"the release reported an unexpected output '{entry.File}' for dataset '{entry.Dataset}'");
            }
            var name = $"{outputDirectory}/{entry.File}";
            if (!areas.Scratch.Exists(name))
            {
                return ([], $"the release reported output {entry.File} but did not write it");
            }
            var (size, adler) = await areas.Scratch.ChecksumAsync(name, cancellationToken);
            files.Add(new OutputFile($"{message.FileId:N}.a{message.Attempt}.{entry.Dataset}", entry.Dataset, name, size,
                Adler32Checksum.Format(adler), entry.Events, message.Run, message.Section));
        }
        return (files, null);
    }

    private async Task<ReconstructionClaimed> Claim(ReconstructFile message, string worker, bool renewal, CancellationToken cancellationToken, long? batchJobId = null)
    {
        var answerWithin = TimeSpan.FromSeconds(options.Value.ClaimTimeoutSeconds);
        var claims = bus.CreateRequestClient<ClaimReconstruction>(RequestTimeout.After(s: options.Value.ClaimTimeoutSeconds));
        var batchJob = batchJobId is { } id ? runner.BatchJobName(id) : runner.BatchJobOf(message.FileId, message.Attempt);
        var response = await claims.GetResponseBoundedAsync<ClaimReconstruction, ReconstructionClaimed>(
            new ClaimReconstruction(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker, renewal, batchJob),
            answerWithin, cancellationToken);
        return response.Message;
    }

    /// <summary>
    /// Renews the attempt's lease every heartbeat. The job is stopped when the orchestrator refuses a renewal, or when
    /// no renewal succeeded for most of a lease: by then the file may have been given to another worker.
    /// </summary>
    private LeaseKeeper KeepLease(ReconstructFile message, string worker, int leaseSeconds, CancellationToken stopping) =>
        LeaseKeeper.Start($"the lease on {message.FileId} attempt {message.Attempt}",
            TimeSpan.FromSeconds(Math.Min(options.Value.HeartbeatSeconds, Math.Max(1, leaseSeconds / 3))), TimeSpan.FromSeconds(leaseSeconds * 0.8),
            async renewal =>
            {
                var renewed = await Claim(message, worker, renewal: true, renewal);
                if (!renewed.Granted)
                {
                    logger.LogWarning("Lease on {FileId} attempt {Attempt} refused: {Reason}", message.FileId, message.Attempt, renewed.Reason);
                }
                return renewed.Granted;
            }, TimeProvider.System, logger, stopping);

    public void Dispose() => _slots.Dispose();
}

/// <summary>
/// Hands a reconstruction request to this process's worker and acknowledges it: the job itself runs
/// under its lease, not under the delivery. A request that finds every slot busy for
/// <see cref="ReconstructionOptions.SlotWaitSeconds"/> goes back to the end of the queue, so no delivery is
/// held longer than that — far below the broker's consumer timeout — and idle workers elsewhere can take it.
/// </summary>
public sealed class ReconstructFileConsumer(ReconstructionWorker worker, ILogger<ReconstructFileConsumer> logger) : IConsumer<ReconstructFile>
{
    public async Task Consume(ConsumeContext<ReconstructFile> context)
    {
        var outcome = await worker.DispatchAsync(context.Message, context.CancellationToken);
        if (outcome == DispatchOutcome.NoFreeSlot)
        {
            logger.LogInformation("All slots busy: {FileId} attempt {Attempt} goes back to the queue", context.Message.FileId, context.Message.Attempt);
            await context.SendBoundedAsync(context.ReceiveContext.InputAddress, context.Message);
        }
    }
}

/// <summary>
/// No more requests than there are slots, so queued work stays available to other workers. A claim that cannot reach
/// the orchestrator is tried again; a job's own failures are reported, not retried here.
/// </summary>
public sealed class ReconstructFileConsumerDefinition(IOptions<ReconstructionOptions> options)
    : QueueConsumerDefinition<ReconstructFileConsumer>(QueueName, [1000, 5000], slots: options.Value.EffectiveSlots)
{
    public const string QueueName = "reconstruction";
}
