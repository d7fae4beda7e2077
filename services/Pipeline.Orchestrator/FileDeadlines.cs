using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// When each step of a file is overdue: the deadline the watchdog compares with the clock. Waiting for a reconstruction
/// slot has none (the dispatcher decides when, and nothing is lost meanwhile); a final file has none.
/// </summary>
public sealed class FileDeadlines(OrchestratorOptions options)
{
    /// <summary>How many times a stalled stage-in's wait doubles at most: 4 times the timeout, not more, as a request that was really lost waits that long.</summary>
    private const int StallBackoffDoublings = 2;

    /// <summary>The longest wait for a stalled stage-in, in staging timeouts.</summary>
    public const int StallBackoffLimit = 1 << StallBackoffDoublings;

    public DateTimeOffset Staging(DateTimeOffset now) => now.AddSeconds(options.StagingTimeoutSeconds);

    /// <summary>
    /// A stage-in asked for again after a stall: each stall doubles the wait for the next, up to <see cref="StallBackoffLimit"/>
    /// times the timeout, so that a long stager queue is not flooded with copies of requests it already holds.
    /// </summary>
    public DateTimeOffset StagingAskedAgain(FileState saga, DateTimeOffset now) =>
        now.AddSeconds((double)options.StagingTimeoutSeconds * (1 << Math.Clamp(saga.Stalls, 0, StallBackoffDoublings)));

    public DateTimeOffset Queued(DateTimeOffset now) => now.AddSeconds(options.QueuedTimeoutSeconds);

    public DateTimeOffset Merge(DateTimeOffset now) => now.AddSeconds(options.MergeTimeoutSeconds);

    /// <summary>A file held for its calibration is looked at again by the watchdog after a while.</summary>
    public DateTimeOffset CalibrationCheck(DateTimeOffset now) => now.AddSeconds(options.CalibrationCheckSeconds);

    /// <summary>A staging step known to wait until <paramref name="until"/> (a tape recall) is not stalled before then, nor for a staging time after.</summary>
    public void ExtendStaging(FileState saga, DateTimeOffset? until) => Extend(saga, until, options.StagingTimeoutSeconds);

    /// <summary>A merge known to wait until <paramref name="until"/> (its dataset's file filling up) is not stalled before then, nor for a merge time after.</summary>
    public void ExtendMerge(FileState saga, DateTimeOffset? until) => Extend(saga, until, options.MergeTimeoutSeconds);

    private static void Extend(FileState saga, DateTimeOffset? until, double stepSeconds)
    {
        if (until is { } end && saga.Deadline is { } deadline && deadline < end.AddSeconds(stepSeconds))
        {
            saga.Deadline = end.AddSeconds(stepSeconds);
        }
    }
}
