using Pipeline.Contracts;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>The messages a file's saga sends, made from what the saga holds: the one place their arguments are chosen.</summary>
public static class FileMessages
{
    /// <summary>Stage the raw file in for the current attempt, checked against its catalogued size and checksum.</summary>
    public static StageFile Stage(FileState saga) =>
        new(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt, saga.LogicalName, saga.Size, saga.Adler32);

    /// <summary>
    /// Reconstruct the current attempt, with a time limit always set: the file's own (after a time-out, or an operator's),
    /// else its campaign's as it stands now. A simulated file carries the events to generate and no input.
    /// </summary>
    public static ReconstructFile Reconstruct(FileState saga, int campaignTimeLimitSeconds) =>
        new(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.Attempt, saga.Section, saga.CachedName, saga.Release, saga.Datasets,
            saga.TimeoutSeconds ?? campaignTimeLimitSeconds, saga.CalibrationTag,
            Events: saga.Simulated ? saga.Events : 0,
            InputSize: saga.Simulated ? 0 : saga.Size,
            InputAdler32: saga.Simulated ? null : saga.Adler32,
            RunConditions: saga.RunConditions);

    /// <summary>One reconstruction output for its dataset's merged file, with the raw file's checksum for the manifest.</summary>
    public static MergeOutput Merge(FileState saga, TrackedOutput tracked) =>
        new(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.LogicalName, tracked.Output, saga.Adler32);

    /// <summary>Give a staged copy back to the cache.</summary>
    public static DiscardStagedFile Discard(FileState saga, string cachedName) =>
        new(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, cachedName);

    public static ReconstructionClaimed Granted(FileState saga, int attempt, int leaseSeconds) =>
        new(saga.CorrelationId, attempt, true, leaseSeconds, null);

    public static ReconstructionClaimed Refused(ClaimReconstruction claim, string reason) =>
        new(claim.FileId, claim.Attempt, false, 0, reason);
}
