using System.Linq.Expressions;
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
/// A Monte Carlo file has nothing to stage and goes from registered to staged. Every result names the attempt it
/// belongs to; a result from any other attempt is ignored. The machine does no I/O: what it needs of the world comes
/// with each message (<see cref="FileFacts"/>); what it does on a transition is <see cref="FileSteps"/>'s, with the messages
/// of <see cref="FileMessages"/>; when to give up, and who holds a reconstruction, are the policies' to say
/// (<see cref="AttemptPolicy"/>, <see cref="ReconstructionLeases"/>). <see cref="FileHistory"/> writes down each step.
/// </summary>
public sealed class FileStateMachine : MassTransitStateMachine<FileState>
{
    private readonly AttemptPolicy _attempts;
    private readonly ReconstructionLeases _leases;
    private readonly FileSteps _steps;
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

    public FileStateMachine(IOptions<OrchestratorOptions> options, TimeProvider time)
    {
        _attempts = AttemptPolicy.From(options.Value);
        _leases = new ReconstructionLeases(options.Value);
        _steps = new FileSteps(new FileDeadlines(options.Value), time);
        _time = time;

        InstanceState(x => x.CurrentState);
        var history = new FileHistory(time);
        ConnectStateObserver(history);
        ConnectEventObserver(history);
        // After the history: each report is numbered by the line its transition added.
        ConnectStateObserver(new RunFileReporter());

        // Late and repeated messages are normal under at-least-once delivery: a result for a step the file has left, or
        // a registration of a file already known, changes nothing. A message the pipeline itself sends about a file that
        // is gone is dropped; a claim for one is refused.
        OnUnhandledEvent(x => x.Ignore());
        Correlate(() => FileRegistered);
        Correlate(() => FileStaged);
        Correlate(() => StagingFailed);
        Correlate(() => FileReconstructed);
        Correlate(() => ReconstructionFailed);
        Correlate(() => JobLogsCollected);
        Correlate(() => OutputsMerged);
        Correlate(() => OutputsArchived);
        Correlate(() => RetryFile);
        Correlate(() => FileWaiting, discardUnknown: true);
        Correlate(() => FileStalled, discardUnknown: true);
        Correlate(() => CheckCalibration, discardUnknown: true);
        Correlate(() => DispatchReconstruction, discardUnknown: true);
        Correlate(() => CancelFile, discardUnknown: true);
        Event(() => ClaimReconstruction, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            e.OnMissingInstance(m => m.ExecuteAsync(c => c.RespondBoundedAsync(FileMessages.Refused(c.Message, "unknown file"))));
        });

        Initially(
            When(FileRegistered)
                .Then(c => _steps.Register(c.Saga, c.Message))
                .Because(c => $"{c.Message.LogicalName} registered for campaign {c.Message.Campaign}")
                .TransitionTo(Registered)
                .IfElse(c => c.Saga.AwaitedCalibration is not null,
                    hold => hold.Then(c => _steps.WaitForCalibration(c.Saga)).Because(c => $"waiting for calibration {c.Saga.AwaitedCalibration} of run {c.Saga.Run}")
                        .TransitionTo(AwaitingCalibration),
                    start => Begin(start.If(c => c.Saga.Simulated, simulated => simulated.Because(_ => "nothing to stage: the release generates its events")))));

        // Its calibration was registered (announced, or found by the watchdog's periodic look). Until then the
        // watchdog looks again now and then, in case an announcement crossed this file's registration.
        During(AwaitingCalibration,
            Begin(When(CheckCalibration).Then(c => c.Saga.AwaitedCalibration = null).Because(c => $"calibration registered for run {c.Saga.Run}")),
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion).Then(c => _steps.WaitForCalibration(c.Saga)));

        During(Staging,
            When(FileStaged, c => c.Saga.Attempt == c.Message.Attempt)
                .Then(c => c.Saga.CachedName = c.Message.CachedName).Then(c => FileSteps.WaitForSlot(c.Saga))
                .Because(c => $"cached as {c.Message.CachedName}")
                .TransitionTo(Staged),
            When(StagingFailed, c => c.Saga.Attempt == c.Message.Attempt)
                .Then(c => AttemptPolicy.CountFailure(c.Saga, FailureSignature.Staging, c.Message.Reason, null, null))
                .IfElse(c => _attempts.HasAttemptsLeft(c.Saga),
                    retry => retry.Because(c => $"retry after: {c.Message.Reason}").ThenAsync(_steps.IssueStaging).TransitionTo(Staging),
                    fail => fail.Because(c => AttemptPolicy.Fail(c.Saga, c.Message.Reason)).TransitionTo(Failed)),
            // A recall from tape takes as long as the tape system's queue: the watchdog waits as long as the stager was told to.
            When(FileWaiting, c => c.Saga.Attempt == c.Message.Attempt).Then(c => _steps.Deadlines.ExtendStaging(c.Saga, c.Message.Until)).Because(c => c.Message.Reason));

        // Only the dispatcher holding the lease gives slots: one deposed since may still have dispatches on their way.
        During(Staged,
            When(DispatchReconstruction)
                .IfElse(c => FileSteps.Facts(c).FromCurrentDispatcher,
                    given => given.Because(_ => "reconstruction slot given").ThenAsync(_steps.PublishReconstruction).TransitionTo(Queued),
                    refused => refused.Because(c => $"slot refused: dispatched under lease token {c.Message.Fence}, since taken over by another dispatcher")));

        During(Queued, Reconstructing,
            When(ClaimReconstruction, c => ReconstructionLeases.CanGrant(c.Saga, c.Message, _time.GetUtcNow()))
                .Then(c => _leases.Grant(c.Saga, c.Message, _time.GetUtcNow()))
                .ThenAsync(c => c.RespondBoundedAsync(FileMessages.Granted(c.Saga, c.Message.Attempt, _leases.LeaseSeconds)))
                .TransitionTo(Reconstructing),
            When(ClaimReconstruction, c => !ReconstructionLeases.CanGrant(c.Saga, c.Message, _time.GetUtcNow()))
                .ThenAsync(c => c.RespondBoundedAsync(FileMessages.Refused(c.Message, ReconstructionLeases.RefusalReason(c.Saga, c.Message)))),
            When(FileReconstructed, c => c.Saga.Attempt == c.Message.Attempt && c.Saga.Worker == c.Message.Worker)
                .Then(c => FileSteps.AcceptOutputs(c.Saga, c.Message))
                .ThenAsync(_steps.IssueMerges)
                // Nobody reads the staged copy again. Only the saga gives a copy back: a job whose attempt was replaced
                // (its lease ran out while it ran) must not remove the copy the next attempt of the file reads.
                .ThenAsync(FileSteps.DiscardCachedCopy)
                .Because(c => $"{c.Message.Outputs.Count} outputs in {c.Message.Seconds:F1}s on {c.Message.Worker}")
                .TransitionTo(Reconstructed)
                .If(c => c.Saga.Outputs.Count == 0, none => none.Then(c => FileSteps.Finish(c.Saga)).Because(_ => "no event selected by any dataset").TransitionTo(Archived)),
            When(ReconstructionFailed, c => c.Saga.Attempt == c.Message.Attempt)
                .Then(c => _attempts.CountReconstructionFailure(c.Saga, c.Message))
                .IfElse(c => c.Saga.CampaignCancelled,
                    cancelled => cancelled.Then(c => FileSteps.Finish(c.Saga)).Because(c => $"not retried, the campaign is cancelled: {c.Message.Reason}").TransitionTo(Cancelled),
                    open => open.IfElse(c => _attempts.HasAttemptsLeft(c.Saga),
                        retry => Begin(retry.Because(c => $"retry after: {c.Message.Reason}{AttemptPolicy.LimitNote(c.Saga, c.Message)}")),
                        fail => fail.Because(c => AttemptPolicy.Fail(c.Saga, c.Message.Reason)).ThenAsync(FileSteps.DiscardCachedCopy).TransitionTo(Failed))),
            // A file already queued or reconstructing is not stopped; it is only not tried again.
            When(CancelFile, c => !c.Saga.CampaignCancelled)
                .Then(c => c.Saga.CampaignCancelled = true)
                .Because(c => $"campaign cancelled by {c.Message.RequestedBy}: this reconstruction finishes, a failure is not retried"));

        During([Registered, AwaitingCalibration, Staging, Staged, Reconstructed, Merged, Archived, Failed, Cancelled],
            When(ClaimReconstruction).ThenAsync(c => c.RespondBoundedAsync(FileMessages.Refused(c.Message, $"file is {c.Saga.CurrentState}"))));

        During(Registered, AwaitingCalibration, Staging, Staged,
            When(CancelFile).ThenAsync(FileSteps.DiscardCachedCopy).Then(c => FileSteps.Finish(c.Saga)).Because(c => $"campaign cancelled by {c.Message.RequestedBy}")
                .TransitionTo(Cancelled));

        // A stage-in delivered again (its stager or the broker restarted) can finish after the file's reconstruction ended,
        // or after its campaign was cancelled, re-creating a copy nobody will read: it is given back. (Not for a failed
        // file: an operator's retry may be staging the same copy anew.)
        During(Reconstructed, Merged, Archived, Cancelled,
            When(FileStaged).ThenAsync(c => c.PublishBoundedAsync(FileMessages.Discard(c.Saga, c.Message.CachedName))));

        During(Reconstructed, Merged,
            When(FileWaiting).Then(c => _steps.Deadlines.ExtendMerge(c.Saga, c.Message.Until)).Because(c => c.Message.Reason),
            When(OutputsMerged)
                .Then(c => FileSteps.MarkMerged(c.Saga, c.Message.MergedName, c.Message.OutputIds, archived: false))
                .If(c => FileSteps.AllMergedNow(c.Saga), merged => merged.Because(c => $"all outputs merged, last into {c.Message.MergedName}").TransitionTo(Merged)),
            // An archive report can overtake the merge report it follows; the file still passes through Merged.
            When(OutputsArchived)
                .Then(c => FileSteps.MarkMerged(c.Saga, c.Message.MergedName, c.Message.OutputIds, archived: true))
                .If(c => FileSteps.AllMergedNow(c.Saga), merged => merged.Because(c => $"all outputs merged, last into {c.Message.MergedName}").TransitionTo(Merged))
                // Given back again at the end: the discard sent when the file was reconstructed is lost if the broker
                // fails just after the saga is saved (a retried report then finds the file moved on, and sends nothing).
                .If(c => c.Saga.Outputs.All(o => o.Archived),
                    done => done.Then(c => FileSteps.Finish(c.Saga)).ThenAsync(FileSteps.DiscardCachedCopy)
                        .Because(c => $"all outputs archived, last in {c.Message.MergedName}").TransitionTo(Archived)),
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .Because(_ => "no progress: unarchived outputs sent to the merger again")
                .ThenAsync(_steps.IssueMerges));

        ReissueWhenStalled([Registered], _steps.IssueStaging, Staging, "no progress: stage-in issued again");
        // Asked for again under the same attempt: behind a stager queue longer than the deadline, a new attempt would make
        // every request stale before the stager reached it, and nothing would ever be staged.
        ReissueWhenStalled([Staging], _steps.AskForStagingAgain, Staging, "no progress: stage-in asked for again");
        ReissueWhenStalled([Queued, Reconstructing], _steps.IssueReconstruction, Queued, "no progress or lease expired: reconstruction issued again");

        During(Failed,
            Begin(When(RetryFile).Then(c => AttemptPolicy.Retry(c.Saga, c.Message.ExtraAttempts, c.Message.TimeoutSeconds)).Because(c => AttemptPolicy.RetryNote(c.Message))));

        DuringAny(
            When(JobLogsCollected).Then(c => _steps.AddLogs(c.Saga, c.Message.LogNames)));
    }

    /// <summary>Starts (or restarts) a file's processing: stage-in, or for a simulated file straight to waiting for a slot.</summary>
    private EventActivityBinder<FileState, T> Begin<T>(EventActivityBinder<FileState, T> binder)
        where T : class =>
        binder.IfElse(c => c.Saga.Simulated,
            simulated => simulated.Then(c => AttemptPolicy.StartAttempt(c.Saga)).Then(c => FileSteps.WaitForSlot(c.Saga)).TransitionTo(Staged),
            real => real.ThenAsync(_steps.IssueStaging).TransitionTo(Staging));

    /// <summary>
    /// A file whose step has not moved (the watchdog saw this very version) gets the step issued again, up to
    /// <see cref="OrchestratorOptions.MaxStalls"/> times; past that it fails as stalled.
    /// </summary>
    private void ReissueWhenStalled(State[] during, Func<BehaviorContext<FileState, FileStalled>, Task> issue, State issued, string because) =>
        During(during,
            When(FileStalled, c => c.Saga.Version == c.Message.ObservedVersion)
                .IfElse(c => _attempts.CountStall(c.Saga),
                    again => again.Because(_ => because).ThenAsync(issue).TransitionTo(issued),
                    fail => fail.Then(c => AttemptPolicy.Stalled(c.Saga)).ThenAsync(FileSteps.DiscardCachedCopy).TransitionTo(Failed)));

    private void Correlate<T>(Expression<Func<Event<T>>> property, bool discardUnknown = false)
        where T : class, IFileMessage =>
        Event(property, e =>
        {
            e.CorrelateById(c => c.Message.FileId);
            if (discardUnknown)
            {
                e.OnMissingInstance(m => m.Discard());
            }
        });
}
