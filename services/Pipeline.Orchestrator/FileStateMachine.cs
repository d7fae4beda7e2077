using Pipeline.Infrastructure.Control;
using Pipeline.Infrastructure.Failures;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Campaigns;
using Pipeline.Infrastructure.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// The life of one raw file in one campaign, read top to bottom like the flow chart:
/// registered → (awaiting calibration) → staging → staged (waiting for a reconstruction slot) → queued →
/// reconstructing → reconstructed → merged → archived; or failed, or cancelled with its campaign.
/// A Monte Carlo file has nothing to stage and goes from registered to staged. Every result names the
/// attempt it belongs to; a result from any other attempt is ignored.
/// </summary>
public sealed class FileStateMachine : MassTransitStateMachine<FileState>
{
    private readonly CampaignDirectory _campaigns;
    private readonly PauseState _pause;
    private readonly OrchestratorOptions _options;
    private readonly TimeProvider _time;

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

    public FileStateMachine(
        CampaignDirectory campaigns,
        IOptions<OrchestratorOptions> options,
        TimeProvider time,
        PauseState pause)
    {
        _campaigns = campaigns;
        _options = options.Value;
        _time = time;
        _pause = pause;

        InstanceState(x => x.CurrentState);

        // Late and repeated messages are normal under at-least-once delivery: a result for a step the
        // file has left, or a registration of a file already known, changes nothing.
        OnUnhandledEvent(x => x.Ignore());

        Event(() => FileRegistered, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => FileStaged, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => StagingFailed, e => e.CorrelateById(c => c.Message.FileId));
        Event(() => ClaimReconstruction, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.ExecuteAsync(c => c.RespondAsync(
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
                .ThenAsync(Initialise)
                .IfElse(c => c.Saga.FailureReason is not null,
                    unknown => unknown.Then(Finish).TransitionTo(Failed).Then(c => Note(c)),
                    known => known
                        .TransitionTo(Registered)
                        .Then(c => Note(c, $"{c.Message.LogicalName} registered for campaign {c.Message.Campaign}"))
                        .ThenAsync(LookForCalibration)
                        .IfElse(c => c.Saga.AwaitedCalibration is not null,
                            hold => hold.Then(WaitForCalibration).TransitionTo(AwaitingCalibration).Then(c => Note(c, $"waiting for calibration {c.Saga.AwaitedCalibration} of run {c.Saga.Run}")),
                            start => start.IfElse(c => c.Saga.Simulated,
                                simulated => simulated.Then(c => WaitForSlot(c.Saga, nextAttempt: true)).TransitionTo(Staged).Then(c => Note(c, "nothing to stage: the release generates its events")),
                                real => real.ThenAsync(IssueStaging).TransitionTo(Staging).Then(c => Note(c))))));

        // The calibration may have come meanwhile (its announcement, or the watchdog's periodic look).
        During(AwaitingCalibration,
            When(CheckCalibration)
                .ThenAsync(LookForCalibration)
                .If(c => c.Saga.AwaitedCalibration is null, start => Begin(start, c => $"calibration registered for run {c.Saga.Run}")),
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .ThenAsync(LookForCalibration)
                .IfElse(c => c.Saga.AwaitedCalibration is null,
                    start => Begin(start, c => $"calibration found for run {c.Saga.Run}"),
                    wait => wait.Then(WaitForCalibration)));

        During(Staged,
            When(DispatchReconstruction)
                .ThenAsync(PublishReconstruction)
                .TransitionTo(Queued)
                .Then(c => Note(c, "reconstruction slot given")));

        During(Registered, AwaitingCalibration, Staging, Staged,
            When(CancelFile)
                .ThenAsync(c => c.Saga.CachedName is { } cached
                    ? c.Publish(new DiscardStagedFile(c.Saga.CorrelationId, c.Saga.Run, c.Saga.Stream, c.Saga.Campaign, cached))
                    : Task.CompletedTask)
                .Then(Finish)
                .TransitionTo(Cancelled)
                .Then(c => Note(c, $"campaign cancelled by {c.Message.RequestedBy}")));

        // Staging finished after the campaign was cancelled: nobody will reconstruct the copy, so it is given back.
        During(Cancelled,
            When(FileStaged)
                .ThenAsync(c => c.Publish(new DiscardStagedFile(c.Saga.CorrelationId, c.Saga.Run, c.Saga.Stream, c.Saga.Campaign, c.Message.CachedName))));

        During(Staging,
            When(FileStaged, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c =>
                {
                    c.Saga.CachedName = c.Message.CachedName;
                    WaitForSlot(c.Saga, nextAttempt: false);
                })
                .TransitionTo(Staged)
                .Then(c => Note(c, $"cached as {c.Message.CachedName}")),
            When(StagingFailed, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c => CountFailure(c.Saga, FailureSignature.Staging, c.Message.Reason, null, null))
                .IfElse(c => HasAttemptsLeft(c.Saga),
                    retry => retry.ThenAsync(IssueStaging).TransitionTo(Staging).Then(c => Note(c, $"retry after: {c.Message.Reason}")),
                    fail => fail.Then(c => Quarantine(c.Saga)).TransitionTo(Failed).Then(c => Note(c, FailedNote(c.Saga, c.Message.Reason)))));

        During(Queued, Reconstructing,
            When(ClaimReconstruction, c => CanGrant(c.Saga, c.Message))
                .ThenAsync(GrantLease)
                .TransitionTo(Reconstructing),
            When(ClaimReconstruction, c => !CanGrant(c.Saga, c.Message))
                .ThenAsync(c => Refuse(c, RefusalReason(c.Saga, c.Message))),
            When(FileReconstructed, c => IsCurrent(c.Saga, c.Message.Attempt) && c.Saga.Worker == c.Message.Worker)
                .ThenAsync(AcceptReconstruction)
                // The worker removes its input after reporting; one killed in between would leave it in the cache.
                .ThenAsync(c => c.Saga.CachedName is { } cached
                    ? c.Publish(new DiscardStagedFile(c.Saga.CorrelationId, c.Saga.Run, c.Saga.Stream, c.Saga.Campaign, cached))
                    : Task.CompletedTask)
                .TransitionTo(Reconstructed)
                .Then(c => Note(c, $"{c.Message.Outputs.Count} outputs in {c.Message.Seconds:F1}s on {c.Message.Worker}"))
                .If(c => c.Saga.Outputs.Count == 0,
                    done => done.Then(Finish).TransitionTo(Archived).Then(c => Note(c, "no event selected by any dataset"))),
            When(ReconstructionFailed, c => IsCurrent(c.Saga, c.Message.Attempt))
                .Then(c => CountFailure(c.Saga, FailureSignature.Reconstruction, c.Message.Reason, c.Message.ExitCode, c.Message.LogTail))
                .IfElse(c => _campaigns.IsCancelled(c.Saga.Campaign),
                    cancelled => cancelled.Then(Finish).TransitionTo(Cancelled).Then(c => Note(c, $"not retried, the campaign is cancelled: {c.Message.Reason}")),
                    open => open.IfElse(c => HasAttemptsLeft(c.Saga),
                        retry => Begin(retry, c => $"retry after: {c.Message.Reason}"),
                        fail => fail.Then(c => Quarantine(c.Saga)).TransitionTo(Failed).Then(c => Note(c, FailedNote(c.Saga, c.Message.Reason))))));

        During(new[] { Registered, AwaitingCalibration, Staging, Staged, Reconstructed, Merged, Archived, Failed, Cancelled },
            When(ClaimReconstruction)
                .ThenAsync(c => Refuse(c, $"file is {c.Saga.CurrentState}")));

        During(Reconstructed, Merged, Archived,
            When(OutputsMerged)
                .Then(c => MarkMerged(c.Saga, c.Message.MergedName, c.Message.OutputIds, archived: false))
                .If(c => c.Saga.CurrentState == FileStates.Reconstructed && c.Saga.Outputs.All(o => o.MergedName is not null),
                    merged => merged.TransitionTo(Merged).Then(c => Note(c, $"all outputs merged, last into {c.Message.MergedName}"))));

        // An archive report can overtake the merge report it follows; the file still passes through Merged.
        During(Reconstructed, Merged,
            When(OutputsArchived)
                .Then(c => MarkMerged(c.Saga, c.Message.MergedName, c.Message.OutputIds, archived: true))
                .If(c => c.Saga.CurrentState == FileStates.Reconstructed && c.Saga.Outputs.All(o => o.MergedName is not null),
                    merged => merged.TransitionTo(Merged).Then(c => Note(c, $"all outputs merged, last into {c.Message.MergedName}")))
                .If(c => c.Saga.Outputs.All(o => o.Archived),
                    done => done.Then(Finish).TransitionTo(Archived).Then(c => Note(c, $"all outputs archived, last in {c.Message.MergedName}"))));

        DuringAny(
            When(JobLogsCollected)
                .Then(c =>
                {
                    c.Saga.LogNames.AddRange(c.Message.LogNames.Except(c.Saga.LogNames));
                    c.Saga.UpdatedAt = _time.GetUtcNow();
                }));

        ReissueWhenStalled([Registered, Staging], IssueStaging, Staging, "no progress: stage-in issued again");
        ReissueWhenStalled([Queued, Reconstructing], IssueReconstruction, Queued, "no progress or lease expired: reconstruction issued again");

        During(Reconstructed, Merged,
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .ThenAsync(IssueMerges)
                .Then(c => Note(c, "no progress: unarchived outputs sent to the merger again")));

        During(Failed,
            Begin(When(RetryFile)
                .Then(c =>
                {
                    c.Saga.Failures = 0;
                    c.Saga.RepeatedFailures = 0;
                    c.Saga.Quarantined = false;
                    c.Saga.Stalls = 0;
                    c.Saga.FailureReason = null;
                    c.Saga.FailureStage = null;
                    c.Saga.FailureSignature = null;
                    c.Saga.ExtraAttempts = Math.Max(0, c.Message.ExtraAttempts);
                    c.Saga.TimeoutSeconds = c.Message.TimeoutSeconds ?? c.Saga.TimeoutSeconds;
                })
                , c => RetryNote(c.Message)));
    }

    /// <summary>
    /// A file whose step has not moved (the watchdog saw this very version) gets the step issued again, up to
    /// <see cref="OrchestratorOptions.MaxStalls"/> times; past that it fails as stalled.
    /// </summary>
    private void ReissueWhenStalled(State[] during, Func<BehaviorContext<FileState, FileStalled>, Task> issue, State issued, string detail) =>
        During(during,
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .Then(CountStall)
                .IfElse(c => c.Saga.Stalls <= _options.MaxStalls,
                    again => again.ThenAsync(issue).TransitionTo(issued).Then(c => Note(c, detail)),
                    fail => fail.Then(c => Stalled(c.Saga)).TransitionTo(Failed).Then(c => Note(c))));

    /// <summary>Starts (or restarts) a file's processing: stage-in, or for a simulated file straight to waiting for a slot.</summary>
    private EventActivityBinder<FileState, T> Begin<T>(EventActivityBinder<FileState, T> binder, Func<BehaviorContext<FileState, T>, string?> detail)
        where T : class =>
        binder.IfElse(c => c.Saga.Simulated,
            simulated => simulated.Then(c => WaitForSlot(c.Saga, nextAttempt: true)).TransitionTo(Staged).Then(c => Note(c, detail(c))),
            real => real.ThenAsync(IssueStaging).TransitionTo(Staging).Then(c => Note(c, detail(c))));

    private async Task Initialise(BehaviorContext<FileState, FileRegistered> context)
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
        saga.RegisteredAt = _time.GetUtcNow();
        var campaign = await _campaigns.GetAsync(message.Campaign, context.CancellationToken);
        if (campaign is null)
        {
            saga.FailureReason = $"campaign {message.Campaign} is not known";
            saga.FailureStage = FailureSignature.Watchdog;
            saga.FailureSignature = FailureSignature.Describe(FailureSignature.Watchdog, null, saga.FailureReason, null);
            return;
        }
        saga.MaxAttempts = campaign.Definition.EffectiveMaxAttempts;
        saga.Simulated = campaign.Definition.IsMonteCarlo;
    }

    /// <summary>Sets <see cref="FileState.AwaitedCalibration"/> to the calibration the file still waits for, or null if it may start.</summary>
    private async Task LookForCalibration<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        context.Saga.AwaitedCalibration = await _campaigns.AwaitedCalibrationAsync(context.Saga.Campaign, context.Saga.Run, context.CancellationToken);
    }

    /// <summary>
    /// A held file is looked at again when its calibration is announced, and by the watchdog now and then in
    /// case an announcement crossed this file's own registration.
    /// </summary>
    private void WaitForCalibration<T>(BehaviorContext<FileState, T> context)
        where T : class => context.Saga.Deadline = _time.GetUtcNow().AddSeconds(_options.CalibrationCheckSeconds);

    /// <summary>Staged (or simulated and registered): the dispatcher gives the file a slot by its campaign's share.</summary>
    private void WaitForSlot(FileState saga, bool nextAttempt)
    {
        if (nextAttempt)
        {
            saga.Attempt++;
            saga.Worker = null;
            saga.LeaseExpiresAt = null;
        }
        // Waiting for a slot is not a stall: the dispatcher decides when (woken by DispatchWakeUp), and nothing is lost meanwhile.
        saga.Deadline = null;
    }

    private void Note<T>(BehaviorContext<FileState, T> context, string? detail = null)
        where T : class
    {
        var now = _time.GetUtcNow();
        context.Saga.UpdatedAt = now;
        context.Saga.Record(now, context.Saga.CurrentState, context.Event.Name, detail ?? context.Saga.FailureReason);
    }

    private static bool IsCurrent(FileState saga, int attempt) => saga.Attempt == attempt;

    private bool HasAttemptsLeft(FileState saga) =>
        saga.Failures < saga.MaxAttempts + saga.ExtraAttempts
        && (_options.QuarantineAfterRepeats == 0 || saga.RepeatedFailures < _options.QuarantineAfterRepeats);

    /// <summary>Marks a failing file quarantined when it stops because its failure repeats, not because its budget is spent.</summary>
    private static void Quarantine(FileState saga) => saga.Quarantined = saga.Failures < saga.MaxAttempts + saga.ExtraAttempts;

    private static string FailedNote(FileState saga, string reason) =>
        saga.Quarantined ? $"quarantined after {saga.RepeatedFailures} attempts failing the same way ({saga.FailureSignature}): {reason}" : reason;

    private static string RetryNote(RetryFile retry) =>
        $"retried by {retry.RequestedBy}"
        + (retry.ExtraAttempts > 0 ? $", {retry.ExtraAttempts} extra attempts" : "")
        + (retry.TimeoutSeconds is { } timeout ? $", time limit {timeout}s" : "");

    private void Stalled(FileState saga)
    {
        saga.FailureReason = $"stalled {saga.Stalls} times";
        saga.FailureStage = FailureSignature.Watchdog;
        saga.FailureSignature = FailureSignature.Describe(FailureSignature.Watchdog, null, saga.FailureReason, null);
        saga.FailureRelease = _campaigns.Release(saga.Campaign);
    }

    private void CountFailure(FileState saga, string stage, string reason, int? exitCode, string? logTail)
    {
        var signature = FailureSignature.Describe(stage, exitCode, reason, logTail);
        saga.Failures++;
        saga.RepeatedFailures = signature == saga.FailureSignature ? saga.RepeatedFailures + 1 : 1;
        saga.FailureReason = reason;
        saga.FailureStage = stage;
        saga.FailureSignature = signature;
        saga.FailureRelease = _campaigns.Release(saga.Campaign);
        saga.LastExitCode = exitCode;
        saga.LastLogTail = logTail ?? saga.LastLogTail;
        saga.Worker = null;
        saga.LeaseExpiresAt = null;
    }

    /// <summary>A step issued again by the watchdog is a stall, unless it was held for a paused campaign.</summary>
    private static void CountStall(BehaviorContext<FileState, FileStalled> context)
    {
        if (!context.Saga.Held)
        {
            context.Saga.Stalls++;
        }
        context.Saga.Held = false;
    }

    /// <summary>
    /// True if the file's campaign is paused: the step is not issued, the file is marked held and due at once,
    /// so that the watchdog (which leaves paused campaigns alone) issues it as soon as the campaign resumes.
    /// </summary>
    private bool HoldForPausedCampaign<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (!_pause.IsCampaignPaused(context.Saga.Campaign))
        {
            return false;
        }
        context.Saga.Held = true;
        context.Saga.Deadline = _time.GetUtcNow();
        Note(context, $"held: campaign {context.Saga.Campaign} is paused");
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
        saga.LeaseExpiresAt = null;
        saga.Deadline = _time.GetUtcNow().AddSeconds(_options.StagingTimeoutSeconds);
        return context.Publish(new StageFile(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt,
            saga.LogicalName, saga.Size, saga.Adler32));
    }

    private Task IssueReconstruction<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (HoldForPausedCampaign(context))
        {
            return Task.CompletedTask;
        }
        context.Saga.Attempt++;
        context.Saga.Worker = null;
        context.Saga.LeaseExpiresAt = null;
        return PublishReconstruction(context);
    }

    private async Task PublishReconstruction<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        var saga = context.Saga;
        if (HoldForPausedCampaign(context))
        {
            return;
        }
        saga.Deadline = _time.GetUtcNow().AddSeconds(_options.QueuedTimeoutSeconds);
        var campaign = (await _campaigns.GetAsync(saga.Campaign, context.CancellationToken))?.Definition
            ?? throw new InvalidOperationException($"Campaign {saga.Campaign} of file {saga.CorrelationId} is not known.");
        await context.Publish(new ReconstructFile(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt,
            saga.Section, saga.CachedName, campaign.Release!.Version!, campaign.Selections, saga.TimeoutSeconds,
            campaign.CalibrationTag, saga.Simulated ? saga.Events : 0,
            saga.Simulated ? 0 : saga.Size, saga.Simulated ? null : saga.Adler32, saga.RunConditions));
    }

    private bool CanGrant(FileState saga, ClaimReconstruction claim) =>
        IsCurrent(saga, claim.Attempt)
        && (saga.Worker is null || saga.Worker == claim.Worker || saga.LeaseExpiresAt < _time.GetUtcNow())
        && !(claim.IsRenewal && saga.Worker != claim.Worker);

    private string RefusalReason(FileState saga, ClaimReconstruction claim) =>
        !IsCurrent(saga, claim.Attempt) ? $"attempt {claim.Attempt} is stale; current attempt is {saga.Attempt}"
        : claim.IsRenewal && saga.Worker != claim.Worker ? $"lease now held by {saga.Worker ?? "nobody"}"
        : $"lease held by {saga.Worker} until {saga.LeaseExpiresAt:O}";

    private Task GrantLease(BehaviorContext<FileState, ClaimReconstruction> context)
    {
        var (saga, claim) = (context.Saga, context.Message);
        var now = _time.GetUtcNow();
        var firstClaim = saga.Worker != claim.Worker || saga.CurrentState != FileStates.Reconstructing;
        saga.Worker = claim.Worker;
        saga.LeaseExpiresAt = now.AddSeconds(_options.LeaseSeconds);
        saga.Deadline = saga.LeaseExpiresAt;
        saga.UpdatedAt = now;
        if (firstClaim)
        {
            saga.Record(now, FileStates.Reconstructing, context.Event.Name, $"claimed by {claim.Worker}");
        }
        return context.RespondAsync(new ReconstructionClaimed(saga.CorrelationId, claim.Attempt, true, _options.LeaseSeconds, null));
    }

    private static Task Refuse(BehaviorContext<FileState, ClaimReconstruction> context, string reason) =>
        context.RespondAsync(new ReconstructionClaimed(context.Message.FileId, context.Message.Attempt, false, 0, reason));

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
            await context.Publish(new MergeOutput(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.LogicalName, tracked.Output, saga.Adler32));
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
}
