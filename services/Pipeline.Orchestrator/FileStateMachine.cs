using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Failures;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// The life of one raw file in one campaign, read top to bottom like the flow chart:
/// registered → (awaiting calibration) → staging → staged (waiting for a reconstruction slot) → queued →
/// reconstructing → reconstructed → merged → archived; or failed, or cancelled with its campaign.
/// A Monte Carlo file has nothing to stage and goes from registered to staged. Every result names the
/// attempt it belongs to; a result from any other attempt is ignored. What the file needs of its campaign came
/// with its registration; whether its campaign is paused comes with each message (<see cref="PausedCampaigns"/>);
/// when to give up is <see cref="AttemptPolicy"/>'s to say; <see cref="FileHistory"/> writes down each step.
/// </summary>
public sealed class FileStateMachine : MassTransitStateMachine<FileState>
{
    private readonly OrchestratorOptions _options;
    private readonly AttemptPolicy _policy;
    private readonly TimeProvider _time;
    private readonly ISingletonLeaseStore _singletons;

    public State Registered { get; private set; } = null!;
    public State AwaitingCalibration { get; private set; } = null!;
    public State Staging { get; private set; } = null!;
    public State Staged { get; private set; } = null!;
    public State Queued { get; private set; } = null!;
    public State Reconstructing { get; private set; } = null!;
    public State Reconstructed { get; private set; } = null!;
    public State Merged { get; private set; } = null!;
    public State Archived { get; private set; } = null!;
    public State Failed { get; private set; } = null!;
    public State Cancelled { get; private set; } = null!;

    public Event<FileRegistered> FileRegistered { get; private set; } = null!;
    public Event<FileStaged> FileStaged { get; private set; } = null!;
    public Event<StagingFailed> StagingFailed { get; private set; } = null!;
    public Event<FileWaiting> FileWaiting { get; private set; } = null!;
    public Event<ClaimReconstruction> ClaimReconstruction { get; private set; } = null!;
    public Event<FileReconstructed> FileReconstructed { get; private set; } = null!;
    public Event<ReconstructionFailed> ReconstructionFailed { get; private set; } = null!;
    public Event<JobLogsCollected> JobLogsCollected { get; private set; } = null!;
    public Event<OutputsMerged> OutputsMerged { get; private set; } = null!;
    public Event<OutputsArchived> OutputsArchived { get; private set; } = null!;
    public Event<FileStalled> FileStalled { get; private set; } = null!;
    public Event<RetryFile> RetryFile { get; private set; } = null!;
    public Event<CheckCalibration> CheckCalibration { get; private set; } = null!;
    public Event<DispatchReconstruction> DispatchReconstruction { get; private set; } = null!;
    public Event<CancelFile> CancelFile { get; private set; } = null!;

    public FileStateMachine(IOptions<OrchestratorOptions> options, ISingletonLeaseStore singletons, TimeProvider time)
    {
        _singletons = singletons;
        _options = options.Value;
        _policy = AttemptPolicy.From(_options);
        _time = time;

        InstanceState(x => x.CurrentState);
        var history = new FileHistory(time);
        ConnectStateObserver(history);
        ConnectEventObserver(history);
        // After the history: each report is numbered by the line its transition added.
        ConnectStateObserver(new RunFileReporter());

        // Late and repeated messages are normal under at-least-once delivery: a result for a step the
        // file has left, or a registration of a file already known, changes nothing.
        OnUnhandledEvent(x => x.Ignore());

        Event(() => FileRegistered, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => FileStaged, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => StagingFailed, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => FileWaiting, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.Discard());
        });
        Event(() => ClaimReconstruction, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.ExecuteAsync(c => c.RespondBoundedAsync(
                new ReconstructionClaimed(c.Message.FileId, c.Message.Attempt, false, 0, "unknown file"))));
        });
        Event(() => FileReconstructed, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => ReconstructionFailed, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => JobLogsCollected, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => OutputsMerged, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => OutputsArchived, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => FileStalled, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.Discard());
        });
        Event(() => RetryFile, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => CheckCalibration, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.Discard());
        });
        Event(() => DispatchReconstruction, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.Discard());
        });
        Event(() => CancelFile, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.Discard());
        });

        Initially(
            When(FileRegistered)
                .Then(Initialise)
                .Because(c => $"{c.Message.LogicalName} registered for campaign {c.Message.Campaign}")
                .TransitionTo(Registered)
                .IfElse(c => c.Saga.AwaitedCalibration is not null,
                    hold => hold
                        .Then(WaitForCalibration)
                        .Because(c => $"waiting for calibration {c.Saga.AwaitedCalibration} of run {c.Saga.Run}")
                        .TransitionTo(AwaitingCalibration),
                    start => start.IfElse(c => c.Saga.Simulated,
                        simulated => simulated
                            .Then(c => WaitForSlot(c.Saga, nextAttempt: true))
                            .Because(_ => "nothing to stage: the release generates its events")
                            .TransitionTo(Staged),
                        real => real.ThenAsync(IssueStaging).TransitionTo(Staging))));

        // Its calibration was registered (announced, or found by the watchdog's periodic look). Until then the
        // watchdog looks again now and then, in case an announcement crossed this file's registration.
        During(AwaitingCalibration,
            Begin(When(CheckCalibration).Then(c => c.Saga.AwaitedCalibration = null), c => $"calibration registered for run {c.Saga.Run}"),
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .Then(WaitForCalibration));

        // Only the dispatcher holding the lease gives slots: one deposed since (its lease ran out, another took over)
        // may still have dispatches on their way, which would break the global bound and the campaigns' shares.
        During(Staged,
            When(DispatchReconstruction)
                .IfElseAsync(c => FromCurrentDispatcherAsync(c.Message),
                    given => given
                        .Because(_ => "reconstruction slot given")
                        .ThenAsync(PublishReconstruction)
                        .TransitionTo(Queued),
                    refused => refused
                        .Because(c => $"slot refused: dispatched under lease token {c.Message.Fence}, since taken over by another dispatcher")));

        During(Registered, AwaitingCalibration, Staging, Staged,
            When(CancelFile)
                .ThenAsync(DiscardCachedCopy)
                .Then(Finish)
                .Because(c => $"campaign cancelled by {c.Message.RequestedBy}")
                .TransitionTo(Cancelled));

        // A file already queued or reconstructing is not stopped; it is only not tried again.
        During(Queued, Reconstructing,
            When(CancelFile, c => !c.Saga.CampaignCancelled)
                .Then(c => c.Saga.CampaignCancelled = true)
                .Because(c => $"campaign cancelled by {c.Message.RequestedBy}: this reconstruction finishes, a failure is not retried"));

        // A stage-in delivered again (its stager or the broker restarted) can finish after the file's reconstruction
        // ended, re-creating the copy the worker removed: nobody will read it, so it is given back. (Not for a failed file:
        // an operator's retry may be staging the same copy anew.)
        During(Reconstructed, Merged, Archived,
            When(FileStaged)
                .ThenAsync(c => c.PublishBoundedAsync(new DiscardStagedFile(c.Saga.CorrelationId, c.Saga.Run, c.Saga.Stream, c.Saga.Campaign, c.Message.CachedName))));

        // Staging finished after the campaign was cancelled: nobody will reconstruct the copy, so it is given back.
        During(Cancelled,
            When(FileStaged)
                .ThenAsync(c => c.PublishBoundedAsync(new DiscardStagedFile(c.Saga.CorrelationId, c.Saga.Run, c.Saga.Stream, c.Saga.Campaign, c.Message.CachedName))));

        During(Staging,
            When(FileStaged, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c =>
                {
                    c.Saga.CachedName = c.Message.CachedName;
                    WaitForSlot(c.Saga, nextAttempt: false);
                })
                .Because(c => $"cached as {c.Message.CachedName}")
                .TransitionTo(Staged),
            When(StagingFailed, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c => AttemptPolicy.CountFailure(c.Saga, FailureSignature.Staging, c.Message.Reason, null, null))
                .IfElse(c => _policy.HasAttemptsLeft(c.Saga),
                    retry => retry.Because(c => $"retry after: {c.Message.Reason}").ThenAsync(IssueStaging).TransitionTo(Staging),
                    fail => fail.Because(c => AttemptPolicy.Fail(c.Saga, c.Message.Reason)).TransitionTo(Failed)));

        // A recall from tape takes as long as the tape system's queue: the watchdog waits as long as the stager was told to.
        During(Staging,
            When(FileWaiting, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c => ExtendDeadline(c.Saga, c.Message.Until, _options.StagingTimeoutSeconds))
                .Because(c => c.Message.Reason));

        During(Reconstructed, Merged,
            When(FileWaiting)
                .Then(c => ExtendDeadline(c.Saga, c.Message.Until, _options.MergeTimeoutSeconds))
                .Because(c => c.Message.Reason));

        During(Queued, Reconstructing,
            When(ClaimReconstruction, c => CanGrant(c.Saga, c.Message))
                .ThenAsync(GrantLease)
                .TransitionTo(Reconstructing),
            When(ClaimReconstruction, c => !CanGrant(c.Saga, c.Message))
                .ThenAsync(c => Refuse(c, RefusalReason(c.Saga, c.Message))),
            When(FileReconstructed, c => IsCurrent(c.Saga, c.Message.Attempt) && c.Saga.Worker == c.Message.Worker)
                .ThenAsync(AcceptReconstruction)
                // The worker removes its input after reporting; one killed in between would leave it in the cache.
                .ThenAsync(DiscardCachedCopy)
                .Because(c => $"{c.Message.Outputs.Count} outputs in {c.Message.Seconds:F1}s on {c.Message.Worker}")
                .TransitionTo(Reconstructed)
                .If(c => c.Saga.Outputs.Count == 0,
                    done => done.Then(Finish).Because(_ => "no event selected by any dataset").TransitionTo(Archived)),
            When(ReconstructionFailed, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c =>
                {
                    if (c.Message.SiteFailure)
                    {
                        _policy.CountSiteFailure(c.Saga, FailureSignature.Reconstruction, c.Message.Reason, c.Message.LogTail);
                    }
                    else if (c.Message.TimedOutAfterSeconds is { } limit
                        && AttemptPolicy.ExtendTimeLimit(c.Saga, limit, FailureSignature.Reconstruction, c.Message.Reason, c.Message.LogTail))
                    {
                        // Retried below with the longer limit, at no cost to the file's attempts.
                    }
                    else
                    {
                        AttemptPolicy.CountFailure(c.Saga, FailureSignature.Reconstruction, c.Message.Reason, c.Message.ExitCode, c.Message.LogTail);
                    }
                })
                .IfElse(c => c.Saga.CampaignCancelled,
                    cancelled => cancelled.Then(Finish).Because(c => $"not retried, the campaign is cancelled: {c.Message.Reason}").TransitionTo(Cancelled),
                    open => open.IfElse(c => _policy.HasAttemptsLeft(c.Saga),
                        retry => Begin(retry, c => $"retry after: {c.Message.Reason}"
                            + (c.Message.TimedOutAfterSeconds is not null && c.Saga.TimeoutSeconds is { } longer ? $" (time limit now {longer}s)" : "")),
                        fail => fail.Because(c => AttemptPolicy.Fail(c.Saga, c.Message.Reason)).TransitionTo(Failed))));

        During(new[] { Registered, AwaitingCalibration, Staging, Staged, Reconstructed, Merged, Archived, Failed, Cancelled },
            When(ClaimReconstruction)
                .ThenAsync(c => Refuse(c, $"file is {c.Saga.CurrentState}")));

        During(Reconstructed, Merged, Archived,
            When(OutputsMerged)
                .Then(c => MarkMerged(c.Saga, c.Message.MergedName, c.Message.OutputIds, archived: false))
                .If(c => c.Saga.CurrentState == FileStates.Reconstructed && c.Saga.Outputs.All(o => o.MergedName is not null),
                    merged => merged.Because(c => $"all outputs merged, last into {c.Message.MergedName}").TransitionTo(Merged)));

        // An archive report can overtake the merge report it follows; the file still passes through Merged.
        During(Reconstructed, Merged,
            When(OutputsArchived)
                .Then(c => MarkMerged(c.Saga, c.Message.MergedName, c.Message.OutputIds, archived: true))
                .If(c => c.Saga.CurrentState == FileStates.Reconstructed && c.Saga.Outputs.All(o => o.MergedName is not null),
                    merged => merged.Because(c => $"all outputs merged, last into {c.Message.MergedName}").TransitionTo(Merged))
                .If(c => c.Saga.Outputs.All(o => o.Archived),
                    // Given back again at the end: the discard sent when the file was reconstructed is lost if the broker
                    // fails just after the saga is saved (a retried report then finds the file moved on, and sends nothing).
                    done => done.Then(Finish).ThenAsync(DiscardCachedCopy).Because(c => $"all outputs archived, last in {c.Message.MergedName}").TransitionTo(Archived)));

        DuringAny(
            When(JobLogsCollected)
                .Then(c =>
                {
                    c.Saga.LogNames.AddRange(c.Message.LogNames.Except(c.Saga.LogNames));
                    c.Saga.UpdatedAt = _time.GetUtcNow();
                }));

        ReissueWhenStalled([Registered], IssueStaging, Staging, "no progress: stage-in issued again");
        ReissueWhenStalled([Staging], ReissueStaging, Staging, "no progress: stage-in asked for again");
        ReissueWhenStalled([Queued, Reconstructing], IssueReconstruction, Queued, "no progress or lease expired: reconstruction issued again");

        During(Reconstructed, Merged,
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .Because(_ => "no progress: unarchived outputs sent to the merger again")
                .ThenAsync(IssueMerges));

        During(Failed,
            Begin(When(RetryFile).Then(c => AttemptPolicy.Retry(c.Saga, c.Message.ExtraAttempts, c.Message.TimeoutSeconds)),
                c => RetryNote(c.Message)));
    }

    /// <summary>
    /// A file whose step has not moved (the watchdog saw this very version) gets the step issued again, up to
    /// <see cref="OrchestratorOptions.MaxStalls"/> times; past that it fails as stalled.
    /// </summary>
    private void ReissueWhenStalled(State[] during, Func<BehaviorContext<FileState, FileStalled>, Task> issue, State issued, string because) =>
        During(during,
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .IfElse(c => _policy.CountStall(c.Saga),
                    again => again.Because(_ => because).ThenAsync(issue).TransitionTo(issued),
                    fail => fail.Then(c => AttemptPolicy.Stalled(c.Saga)).TransitionTo(Failed)));

    /// <summary>Starts (or restarts) a file's processing: stage-in, or for a simulated file straight to waiting for a slot.</summary>
    private EventActivityBinder<FileState, T> Begin<T>(EventActivityBinder<FileState, T> binder, Func<BehaviorContext<FileState, T>, string> because)
        where T : class =>
        binder.Because(because).IfElse(c => c.Saga.Simulated,
            simulated => simulated.Then(c => WaitForSlot(c.Saga, nextAttempt: true)).TransitionTo(Staged),
            real => real.ThenAsync(IssueStaging).TransitionTo(Staging));

    /// <summary>The file's facts, and its campaign's terms, as its registration gives them.</summary>
    private void Initialise(BehaviorContext<FileState, FileRegistered> context)
    {
        var (saga, message) = (context.Saga, context.Message);
        saga.Campaign = message.Campaign;
        saga.Run = message.Run;
        saga.Stream = message.Stream;
        saga.Section = message.Section;
        saga.LogicalName = message.LogicalName;
        saga.Size = message.Size;
        saga.Adler32 = message.Adler32;
        saga.Events = message.Events;
        saga.RunConditions = message.RunConditions;
        saga.AwaitedCalibration = message.AwaitedCalibration;
        saga.Release = message.Terms.Release;
        saga.Datasets = [.. message.Terms.Datasets];
        saga.CalibrationTag = message.Terms.CalibrationTag;
        saga.MaxAttempts = message.Terms.MaxAttempts;
        saga.Simulated = message.Terms.Simulated;
        saga.RegisteredAt = _time.GetUtcNow();
    }

    /// <summary>A held file is looked at again by the watchdog after a while (see <see cref="OrchestratorOptions.CalibrationCheckSeconds"/>).</summary>
    private void WaitForCalibration<T>(BehaviorContext<FileState, T> context)
        where T : class => context.Saga.Deadline = _time.GetUtcNow().AddSeconds(_options.CalibrationCheckSeconds);

    /// <summary>Staged (or simulated and registered): the dispatcher gives the file a slot by its campaign's share.</summary>
    private static void WaitForSlot(FileState saga, bool nextAttempt)
    {
        if (nextAttempt)
        {
            saga.Attempt++;
            saga.Worker = null;
            saga.BatchJob = null;
            saga.LeaseExpiresAt = null;
        }
        // Waiting for a slot is not a stall: the dispatcher decides when (woken by DispatchWakeUp), and nothing is lost meanwhile.
        saga.Deadline = null;
    }

    private static bool IsCurrent(FileState saga, int attempt) => saga.Attempt == attempt;

    /// <summary>A step known to wait until <paramref name="until"/> is not stalled before then (and the step's own time after).</summary>
    private static void ExtendDeadline(FileState saga, DateTimeOffset? until, double stepSeconds)
    {
        if (until is { } end && saga.Deadline is { } deadline && deadline < end.AddSeconds(stepSeconds))
        {
            saga.Deadline = end.AddSeconds(stepSeconds);
        }
    }

    private static string RetryNote(RetryFile retry) =>
        $"retried by {retry.RequestedBy}"
        + (retry.ExtraAttempts > 0 ? $", {retry.ExtraAttempts} extra attempts" : "")
        + (retry.TimeoutSeconds is { } timeout ? $", time limit {timeout}s" : "");

    /// <summary>
    /// True if the file's campaign is paused: the step is not issued, the file is marked held and due at once,
    /// so that the watchdog (which leaves paused campaigns alone) issues it as soon as the campaign resumes.
    /// </summary>
    private bool HoldForPausedCampaign<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        var paused = context.TryGetPayload(out PausedCampaigns? campaigns)
            ? campaigns
            : throw new InvalidOperationException($"The file sagas' endpoint has no {nameof(PausedCampaignsFilter<T>)}: whether a campaign is paused is not known.");
        if (!paused.Contains(context.Saga.Campaign))
        {
            return false;
        }
        context.Saga.Held = true;
        context.Saga.Deadline = _time.GetUtcNow();
        context.Saga.Because = $"held: campaign {context.Saga.Campaign} is paused";
        return true;
    }

    private Task IssueStaging<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        var saga = context.Saga;
        if (HoldForPausedCampaign(context))
        {
            return Task.CompletedTask;
        }
        saga.Attempt++;
        saga.CachedName = null;
        saga.Worker = null;
        saga.BatchJob = null;
        saga.LeaseExpiresAt = null;
        saga.Deadline = _time.GetUtcNow().AddSeconds(_options.StagingTimeoutSeconds);
        return context.PublishBoundedAsync(new StageFile(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt,
            saga.LogicalName, saga.Size, saga.Adler32));
    }

    /// <summary>
    /// A stage-in that made no progress in time is asked for again under the same attempt, so that whichever request
    /// finishes first moves the file on. A new attempt would make the earlier request's result stale: behind a stager
    /// queue longer than the deadline, every request would be superseded before the stager reached it, and no file
    /// would ever be staged. Each stall doubles the wait for the next, up to <see cref="StallBackoffLimit"/> times the
    /// timeout, so that a long queue is not flooded with copies of requests it already holds.
    /// </summary>
    private Task ReissueStaging(BehaviorContext<FileState, FileStalled> context)
    {
        var saga = context.Saga;
        if (saga.Attempt == 0)
        {
            // Held for a paused campaign before its first request left: this is its first.
            return IssueStaging(context);
        }
        if (HoldForPausedCampaign(context))
        {
            return Task.CompletedTask;
        }
        var backoff = 1 << Math.Clamp(saga.Stalls, 0, StallBackoffDoublings);
        saga.Deadline = _time.GetUtcNow().AddSeconds((double)_options.StagingTimeoutSeconds * backoff);
        return context.PublishBoundedAsync(new StageFile(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt,
            saga.LogicalName, saga.Size, saga.Adler32));
    }

    /// <summary>How many times a stalled stage-in's wait doubles at most: 4 times the timeout, not more, as a request that was really lost waits that long.</summary>
    private const int StallBackoffDoublings = 2;

    /// <summary>The longest wait for a stalled stage-in, in staging timeouts.</summary>
    public const int StallBackoffLimit = 1 << StallBackoffDoublings;

    private Task IssueReconstruction<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (HoldForPausedCampaign(context))
        {
            return Task.CompletedTask;
        }
        context.Saga.Attempt++;
        context.Saga.Worker = null;
        context.Saga.BatchJob = null;
        context.Saga.LeaseExpiresAt = null;
        return PublishReconstruction(context);
    }

    private Task PublishReconstruction<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        var saga = context.Saga;
        if (HoldForPausedCampaign(context))
        {
            return Task.CompletedTask;
        }
        saga.Deadline = _time.GetUtcNow().AddSeconds(_options.QueuedTimeoutSeconds);
        return context.PublishBoundedAsync(new ReconstructFile(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt,
            saga.Section, saga.CachedName, saga.Release, saga.Datasets, saga.TimeoutSeconds,
            saga.CalibrationTag, saga.Simulated ? saga.Events : 0,
            saga.Simulated ? 0 : saga.Size, saga.Simulated ? null : saga.Adler32, saga.RunConditions));
    }

    private async Task<bool> FromCurrentDispatcherAsync(DispatchReconstruction dispatch) =>
        dispatch.Fence is not { } fence
        || (await _singletons.GetAsync(Production.Control.Singletons.Dispatcher, CancellationToken.None))?.Token is not { } current
        || fence >= current;

    private bool CanGrant(FileState saga, ClaimReconstruction claim) =>
        IsCurrent(saga, claim.Attempt)
        && (saga.Worker is null || saga.Worker == claim.Worker || saga.LeaseExpiresAt < _time.GetUtcNow())
        && !(claim.IsRenewal && saga.Worker != claim.Worker);

    private static string RefusalReason(FileState saga, ClaimReconstruction claim) =>
        !IsCurrent(saga, claim.Attempt) ? $"attempt {claim.Attempt} is stale; current attempt is {saga.Attempt}"
        : claim.IsRenewal && saga.Worker != claim.Worker ? $"lease now held by {saga.Worker ?? "nobody"}"
        : $"lease held by {saga.Worker} until {saga.LeaseExpiresAt:O}";

    private Task GrantLease(BehaviorContext<FileState, ClaimReconstruction> context)
    {
        var (saga, claim) = (context.Saga, context.Message);
        var now = _time.GetUtcNow();
        if (saga.Worker != claim.Worker || saga.CurrentState != FileStates.Reconstructing)
        {
            saga.Because = $"claimed by {claim.Worker}";
        }
        saga.Worker = claim.Worker;
        // A renewal naming only the executor (the job is submitted but not yet known by id) keeps the id known before.
        saga.BatchJob = claim.BatchJob is { } named && (named.Contains(':', StringComparison.Ordinal) || saga.BatchJob is null || !claim.IsRenewal)
            ? named
            : claim.IsRenewal ? saga.BatchJob : null;
        saga.LeaseExpiresAt = now.AddSeconds(_options.LeaseSeconds);
        // A batch job runs on without its worker: past its lease, another worker may adopt it (a claim is granted once
        // the lease ran out) until the grace is over too; only then does the watchdog give the file a new attempt.
        saga.Deadline = saga.BatchJob is null ? saga.LeaseExpiresAt : saga.LeaseExpiresAt.Value.AddSeconds(_options.BatchAdoptionSeconds);
        saga.UpdatedAt = now;
        return context.RespondBoundedAsync(new ReconstructionClaimed(saga.CorrelationId, claim.Attempt, true, _options.LeaseSeconds, null));
    }

    private static Task Refuse(BehaviorContext<FileState, ClaimReconstruction> context, string reason) =>
        context.RespondBoundedAsync(new ReconstructionClaimed(context.Message.FileId, context.Message.Attempt, false, 0, reason));

    private Task AcceptReconstruction(BehaviorContext<FileState, FileReconstructed> context)
    {
        var saga = context.Saga;
        saga.Outputs = [.. context.Message.Outputs.Select(o => new TrackedOutput { Output = o })];
        saga.ReconstructionSeconds = context.Message.Seconds;
        saga.LeaseExpiresAt = null;
        // Earlier failures stay in the history; the file itself is no longer failing.
        saga.FailureReason = null;
        return IssueMerges(context);
    }

    private async Task IssueMerges<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        var saga = context.Saga;
        saga.Deadline = _time.GetUtcNow().AddSeconds(_options.MergeTimeoutSeconds);
        foreach (var tracked in saga.Outputs.Where(o => !o.Archived))
        {
            await context.PublishBoundedAsync(new MergeOutput(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.LogicalName, tracked.Output, saga.Adler32));
        }
    }

    private static void MarkMerged(FileState saga, string mergedName, IReadOnlyList<string> outputIds, bool archived)
    {
        foreach (var tracked in saga.Outputs.Where(o => outputIds.Contains(o.Output.OutputId)))
        {
            tracked.MergedName = mergedName;
            tracked.Archived |= archived;
        }
    }

    private static void Finish<T>(BehaviorContext<FileState, T> context)
        where T : class => context.Saga.Deadline = null;

    /// <summary>Asks the stager to delete the file's staged copy, if it has one (a copy already gone only gives its room back).</summary>
    private static Task DiscardCachedCopy<T>(BehaviorContext<FileState, T> context)
        where T : class =>
        context.Saga.CachedName is { } cached
            ? context.PublishBoundedAsync(new DiscardStagedFile(context.Saga.CorrelationId, context.Saga.Run, context.Saga.Stream, context.Saga.Campaign, cached))
            : Task.CompletedTask;
}

/// <summary>How the state machine says why an event changes a file (<see cref="FileHistory"/> writes it down).</summary>
internal static class FileNarration
{
    public static EventActivityBinder<FileState, T> Because<T>(this EventActivityBinder<FileState, T> binder, Func<BehaviorContext<FileState, T>, string> because)
        where T : class => binder.Then(c => c.Saga.Because = because(c));
}
