using System.Collections.Concurrent;
using System.Diagnostics;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.Jobs;
using Pipeline.Reconstruction.Batch;

namespace Pipeline.Reconstruction;

/// <summary>
/// Runs reconstruction attempts in this process's slots. A job starts only after the worker has claimed
/// the attempt's lease from the orchestrator (so two workers never run one file at once); it then runs
/// in the background, renewing the lease, while the request message is already acknowledged — a job may
/// last hours without holding a broker delivery open. A worker that dies leaves a lease that expires; the
/// orchestrator's watchdog then gives the file a new attempt. Each execution writes into its own scratch
/// folder; the orchestrator accepts the outputs of the current attempt and lease holder only. The job's input is
/// <see cref="JobInputs"/>', its release <see cref="ReleaseLauncher"/>'s, its logs <see cref="JobLogs"/>' and its outputs
/// <see cref="JobOutputs"/>'. Nothing of a job stays on this host once it ended: its logs and outputs leave through storage.
/// </summary>
public sealed class ReconstructionWorker(
    StorageAreas areas,
    ReleaseLauncher release,
    JobOutputs outputs,
    JobLogs jobLogs,
    IReleaseRunner runner,
    IBus bus,
    IOptions<ReconstructionOptions> options,
    IOptions<PipelineOptions> pipeline,
    IHostApplicationLifetime lifetime,
    AreaGate gate,
    StageReporter report,
    TimeProvider time,
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
            // The job writes into scratch, and its outputs then wait for the merger in the unmerged area: a job starts
            // only when both have room, reserved by the size of its input until its real outputs are known.
            var input = message.CachedName is { } cached ? (await areas.Cache.StatAsync(cached, cancellationToken))?.Size ?? 0 : 0;
            await gate.AdmitAsync(StorageOptions.Unmerged, AttemptFolder(message), input, cancellationToken);
            // A job that moves its own bytes (a batch job on its node) leaves only its script here.
            await gate.AdmitAsync(StorageOptions.Scratch, AttemptFolder(message), runner.MovesJobBytes ? 0 : input, cancellationToken);
            var worker = pipeline.Value.EffectiveInstanceName;
            var claim = await ClaimAsync(message, worker, renewal: false, cancellationToken);
            if (!claim.Granted)
            {
                logger.LogInformation("Not running {FileId} attempt {Attempt}: {Reason}", message.FileId, message.Attempt, claim.Reason);
                await gate.ReleaseAsync(StorageOptions.Scratch, AttemptFolder(message));
                await gate.ReleaseAsync(StorageOptions.Unmerged, AttemptFolder(message));
                return (DispatchOutcome.Refused, null);
            }
            return (DispatchOutcome.Started, () => RunJobAsync(message, worker, claim.LeaseSeconds));
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
            var claim = await ClaimAsync(message, worker, renewal: false, cancellationToken, batchJobId);
            if (!claim.Granted)
            {
                // Held by a live worker: looked at again later. Anything else (a stale attempt, a file already done)
                // is for good: the job's result would be ignored.
                return (claim.Reason?.StartsWith("lease held by", StringComparison.Ordinal) == true ? AdoptionOutcome.HeldElsewhere : AdoptionOutcome.Superseded, null);
            }
            logger.LogInformation("Adopted batch job {JobId} running {FileId} attempt {Attempt}", batchJobId, message.FileId, message.Attempt);
            await gate.AdmitAsync(StorageOptions.Unmerged, AttemptFolder(message), 0, cancellationToken);
            await gate.AdmitAsync(StorageOptions.Scratch, AttemptFolder(message), 0, cancellationToken);
            var adopted = new AdoptedJob(jobDirectory, batchJobId, request.TimeLimitSeconds);
            return (AdoptionOutcome.Adopted, () => RunJobAsync(message, worker, claim.LeaseSeconds, adopted));
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
                    _ = Task.Run(async () =>
                    {
                        try
                        {
                            await job();
                        }
                        finally
                        {
                            _running.TryRemove(key, out _);
                            _slots.Release();
                        }
                    }, CancellationToken.None);
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

    private async Task RunJobAsync(ReconstructFile message, string worker, int leaseSeconds, AdoptedJob? adopted = null)
    {
        using var busy = report.Busy(PipelineMetrics.Reconstruction);
        // The job outlives the consumption of its message: it is a step of the file's trace of its own.
        using var span = FileTracing.StartStep("reconstruction job", "reconstruction", message, ActivityKind.Internal);
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
            try
            {
                await bus.PublishBoundedAsync(new ReconstructionFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker,
                    $"worker error: {ex.Message}", null, ""), CancellationToken.None);
            }
            catch (Exception publish)
            {
                // The lease will run out unrenewed and the watchdog will give the file a new attempt.
                logger.LogError(publish, "Could not report the breakdown of {FileId} attempt {Attempt}", message.FileId, message.Attempt);
            }
        }
    }

    /// <summary>The scratch folder of one attempt; each execution of it gets a fresh folder inside, and the attempt's room in scratch is reserved under this name.</summary>
    public static string AttemptFolder(ReconstructFile message) => JobFolders.OfAttempt(message.Campaign, message.Run, message.FileId, message.Attempt);

    private async Task RunAttemptAsync(ReconstructFile message, string worker, int leaseSeconds, CancellationToken stopping, AdoptedJob? adopted)
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
        JobResult result;
        try
        {
            result = adopted is null
                ? await release.RunAsync(message, jobPath, outputDirectory, logPath, lease.Lost)
                : await release.FollowAsync(message, adopted, jobPath, logPath, lease.Lost);
        }
        catch (OperationCanceledException) when (lease.Lost.IsCancellationRequested && !stopping.IsCancellationRequested)
        {
            logger.LogWarning("Stopped {FileId} attempt {Attempt}: the lease was lost, another attempt owns the file", message.FileId, message.Attempt);
            areas.Scratch.DeleteDirectory(jobDirectory);
            await gate.ReleaseAsync(StorageOptions.Scratch, AttemptFolder(message));
            await gate.ReleaseAsync(StorageOptions.Unmerged, AttemptFolder(message));
            return;
        }
        finally
        {
            await lease.DisposeAsync();
            // A batch job left running at shutdown still reads its fetched input, and whoever adopts the job removes it.
            if (!(runner.JobsOutliveWorker && stopping.IsCancellationRequested))
            {
                JobInputs.RemoveFetched(jobPath);
            }
        }

        // A wrapped batch job copied its logs and outputs itself, from its node, and said so in its report (none when
        // it could not write one: the problem then says why).
        var jobReport = result.Outcome.Report;
        var logs = jobReport?.Logs ?? (runner.MovesJobBytes ? [] : await jobLogs.ShipAsync(message, jobDirectory, stopping));
        await bus.PublishBoundedAsync(new CollectJobLogs(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt,
            JobLogFolders.Of(message.Campaign, message.Run, message.Stream, message.FileId, message.Attempt), logs), CancellationToken.None);

        var problem = jobReport?.Problem ?? result.Problem;
        var siteFailure = jobReport?.Problem is not null ? jobReport.SiteFailure : result.Outcome.SiteFailure;
        if (runner.MovesJobBytes)
        {
            await ForgetWrappedJobAsync(jobDirectory);
        }
        if (problem is null)
        {
            var (files, outputProblem) = jobReport is not null ? (jobReport.Outputs, null) : await outputs.DescribeAsync(message, outputDirectory, stopping);
            if (jobReport is not null)
            {
                await outputs.TakeShippedAsync(AttemptFolder(message), files);
            }
            else if (outputProblem is null)
            {
                try
                {
                    await outputs.ShipAsync(AttemptFolder(message), outputDirectory, files, stopping);
                }
                catch (IOException ex)
                {
                    // The storage failed the attempt, not the file: it does not count against the file's attempts.
                    (outputProblem, siteFailure) = (ex.Message, true);
                }
            }
            if (outputProblem is null)
            {
                logger.LogInformation("Reconstructed {FileId} attempt {Attempt}: {Outputs} outputs in {Seconds:F1}s", message.FileId, message.Attempt, files.Count, stopwatch.Elapsed.TotalSeconds);
                await report.CompletedAsync(PipelineMetrics.Reconstruction, message.Campaign, files.Sum(f => f.Size), stopwatch.Elapsed, CancellationToken.None);
                FileTracing.Outcome($"reconstructed: {files.Count} outputs");
                await bus.PublishBoundedAsync(new FileReconstructed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker, files, stopwatch.Elapsed.TotalSeconds), CancellationToken.None);
                return;
            }
            problem = outputProblem;
        }

        report.Failed(PipelineMetrics.Reconstruction, problem);
        logger.LogWarning("Reconstruction of {FileId} attempt {Attempt} failed: {Reason}", message.FileId, message.Attempt, problem);
        FileTracing.Outcome($"failed: {problem}");
        await outputs.DropAsync(AttemptFolder(message), outputDirectory, jobReport?.Outputs);
        var outcome = result.Outcome;
        await bus.PublishBoundedAsync(new ReconstructionFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker,
            problem, outcome.ExitCode, outcome.LogTail, siteFailure, outcome.TimedOut ? result.TimeLimitSeconds : null,
            SlurmQueueKeeper.CancelledForPause(outcome, message.Campaign)), CancellationToken.None);
    }

    /// <summary>
    /// What a wrapped job leaves once its report is read: the report in the unmerged area, and the job's folder here
    /// (its script and request). A report that cannot be removed now goes with the leftover sweep of the attempt's outputs.
    /// </summary>
    private async Task ForgetWrappedJobAsync(string jobDirectory)
    {
        areas.Scratch.DeleteDirectory(jobDirectory);
        try
        {
            await areas.Unmerged.DeleteAsync(JobReport.NameIn(jobDirectory), CancellationToken.None);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException)
        {
            logger.LogWarning("Could not remove the report of job {JobDirectory} from the unmerged area ({Reason}); the leftover sweep will", jobDirectory, ex.Message);
        }
    }

    private async Task<ReconstructionClaimed> ClaimAsync(ReconstructFile message, string worker, bool renewal, CancellationToken cancellationToken, long? batchJobId = null)
    {
        var claims = bus.CreateRequestClient<ClaimReconstruction>(RequestTimeout.After(s: options.Value.ClaimTimeoutSeconds));
        var batchJob = batchJobId is { } id ? runner.BatchJobName(id) : runner.BatchJobOf(message.FileId, message.Attempt);
        var response = await claims.GetResponseBoundedAsync<ClaimReconstruction, ReconstructionClaimed>(
            new ClaimReconstruction(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker, renewal, batchJob),
            TimeSpan.FromSeconds(options.Value.ClaimTimeoutSeconds), cancellationToken);
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
                var renewed = await ClaimAsync(message, worker, renewal: true, renewal);
                if (!renewed.Granted)
                {
                    logger.LogWarning("Lease on {FileId} attempt {Attempt} refused: {Reason}", message.FileId, message.Attempt, renewed.Reason);
                }
                return renewed.Granted;
            }, time, logger, stopping);

    public void Dispose() => _slots.Dispose();
}
