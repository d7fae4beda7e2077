using Pipeline.Contracts;
using Pipeline.Production.Failures;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// How a file's failures and stalls are counted and when it stops being retried: after its attempt budget (the
/// campaign's, plus what an operator granted), early when the same failure repeats (quarantine), or after too many
/// stalls. Everything it decides is kept on the saga, so the state machine only asks.
/// </summary>
public sealed class AttemptPolicy(int maxStalls, int quarantineAfterRepeats, int freeSiteFailures = OrchestratorOptions.DefaultFreeSiteFailures)
{
    public static AttemptPolicy From(OrchestratorOptions options) => new(options.MaxStalls, options.QuarantineAfterRepeats, options.FreeSiteFailures);

    /// <summary>A new attempt of the file's processing: nobody holds it, and results of earlier attempts are stale.</summary>
    public static void StartAttempt(FileState saga)
    {
        saga.Attempt++;
        saga.Worker = null;
        saga.BatchJob = null;
        saga.LeaseExpiresAt = null;
    }

    /// <summary>Counts a failure reported by a stage and keeps its reason, its kind (signature) and the lease let go.</summary>
    public static void CountFailure(FileState saga, string stage, string reason, int? exitCode, string? logTail)
    {
        var signature = FailureSignature.Describe(stage, exitCode, reason, logTail);
        saga.Failures++;
        saga.RepeatedFailures = signature == saga.FailureSignature ? saga.RepeatedFailures + 1 : 1;
        Keep(saga, stage, reason, exitCode, logTail, signature);
    }

    /// <summary>Keeps a failure's reason, kind and log on the file, and lets its lease go; counts nothing.</summary>
    private static void Keep(FileState saga, string stage, string reason, int? exitCode, string? logTail, string signature)
    {
        saga.FailureReason = reason;
        saga.FailureStage = stage;
        saga.FailureSignature = signature;
        saga.FailureRelease = saga.Release;
        saga.LastExitCode = exitCode;
        saga.LastLogTail = logTail ?? saga.LastLogTail;
        saga.Worker = null;
        saga.LeaseExpiresAt = null;
    }

    /// <summary>
    /// Counts a failure the site caused (a batch node lost, a job preempted or cancelled by the site): it is kept as any
    /// failure is, but spends none of the file's attempts and does not make a failure repeat, up to the policy's free
    /// site failures per file; past those it counts as any failure, so a file is not retried for ever on a broken site.
    /// </summary>
    public void CountSiteFailure(FileState saga, string stage, string reason, string? logTail)
    {
        if (saga.SiteFailures >= freeSiteFailures)
        {
            CountFailure(saga, stage, reason, null, logTail);
            return;
        }
        saga.SiteFailures++;
        Keep(saga, stage, reason, null, logTail, FailureSignature.Describe(stage, null, reason, null));
    }

    /// <summary>
    /// A job that reached its time limit for the first time: it is given twice that limit for its next attempt, and the
    /// time-out spends none of its attempts (a limit derived from other files' run times can be too short for this
    /// one). Returns false, changing nothing, when the file's limit was already raised once: that time-out counts.
    /// </summary>
    public static bool ExtendTimeLimit(FileState saga, int timedOutAfterSeconds, string stage, string reason, string? logTail)
    {
        if (saga.TimeLimitExtended)
        {
            return false;
        }
        saga.TimeLimitExtended = true;
        saga.TimeoutSeconds = Math.Max(saga.TimeoutSeconds ?? 0, 2 * timedOutAfterSeconds);
        Keep(saga, stage, reason, null, logTail, FailureSignature.Describe(stage, null, reason, null));
        return true;
    }

    /// <summary>
    /// Counts a failed reconstruction as what it was: a failure the site caused (free up to a point), a first time-out
    /// (retried with twice the limit, at no cost), or a failure of the file's own.
    /// </summary>
    public void CountReconstructionFailure(FileState saga, ReconstructionFailed failed)
    {
        if (failed.SiteFailure)
        {
            CountSiteFailure(saga, FailureSignature.Reconstruction, failed.Reason, failed.LogTail);
        }
        else if (failed.TimedOutAfterSeconds is not { } limit || !ExtendTimeLimit(saga, limit, FailureSignature.Reconstruction, failed.Reason, failed.LogTail))
        {
            CountFailure(saga, FailureSignature.Reconstruction, failed.Reason, failed.ExitCode, failed.LogTail);
        }
    }

    /// <summary>What a retry after a time-out adds to its history line: the longer limit it runs with.</summary>
    public static string LimitNote(FileState saga, ReconstructionFailed failed) =>
        failed.TimedOutAfterSeconds is not null && saga.TimeoutSeconds is { } longer ? $" (time limit now {longer}s)" : "";

    /// <summary>The history line of an operator's retry.</summary>
    public static string RetryNote(RetryFile retry) =>
        $"retried by {retry.RequestedBy}"
        + (retry.ExtraAttempts > 0 ? $", {retry.ExtraAttempts} extra attempts" : "")
        + (retry.TimeoutSeconds is { } timeout ? $", time limit {timeout}s" : "");

    /// <summary>Whether the file may be tried again after its last failure.</summary>
    public bool HasAttemptsLeft(FileState saga) =>
        !BudgetSpent(saga) && (quarantineAfterRepeats == 0 || saga.RepeatedFailures < quarantineAfterRepeats);

    /// <summary>
    /// The file fails for good: quarantined if it stopped because its failure repeats rather than because its budget
    /// is spent. Returns the history line that says which.
    /// </summary>
    public static string Fail(FileState saga, string reason)
    {
        saga.Quarantined = !BudgetSpent(saga);
        return saga.Quarantined
            ? $"quarantined after {saga.RepeatedFailures} attempts failing the same way ({saga.FailureSignature}): {reason}"
            : reason;
    }

    /// <summary>
    /// Counts a step the watchdog found not moving; one held for a paused campaign is not a stall. Returns whether the
    /// step may be issued again (false: the file has stalled too often and fails, see <see cref="Stalled"/>).
    /// </summary>
    public bool CountStall(FileState saga)
    {
        if (!saga.Held)
        {
            saga.Stalls++;
        }
        saga.Held = false;
        return saga.Stalls <= maxStalls;
    }

    /// <summary>The file fails because it stalled too often.</summary>
    public static void Stalled(FileState saga)
    {
        saga.FailureReason = $"stalled {saga.Stalls} times";
        saga.FailureStage = FailureSignature.Watchdog;
        saga.FailureSignature = FailureSignature.Describe(FailureSignature.Watchdog, null, saga.FailureReason, null);
        saga.FailureRelease = saga.Release;
    }

    /// <summary>An operator retries a failed file: its counts start again, with extra attempts and a time limit if given.</summary>
    public static void Retry(FileState saga, int extraAttempts, int? timeoutSeconds)
    {
        saga.Failures = 0;
        saga.SiteFailures = 0;
        saga.TimeLimitExtended = false;
        saga.RepeatedFailures = 0;
        saga.Quarantined = false;
        saga.Stalls = 0;
        saga.FailureReason = null;
        saga.FailureStage = null;
        saga.FailureSignature = null;
        saga.ExtraAttempts = Math.Max(0, extraAttempts);
        saga.TimeoutSeconds = timeoutSeconds ?? saga.TimeoutSeconds;
    }

    private static bool BudgetSpent(FileState saga) => saga.Failures >= saga.MaxAttempts + saga.ExtraAttempts;
}
