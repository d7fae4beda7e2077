using System.Collections.Immutable;

namespace Pipeline.Production.State;

/// <summary>
/// The states of a file, and the sets of them that stores, stages and the API ask about: the one place their names are
/// written (the state machine's states are checked against <see cref="All"/> by a test).
/// </summary>
public static class FileStates
{
    public const string Registered = "Registered";
    public const string AwaitingCalibration = "AwaitingCalibration";
    public const string Staging = "Staging";
    public const string Staged = "Staged";
    public const string Queued = "Queued";
    public const string Reconstructing = "Reconstructing";
    public const string Reconstructed = "Reconstructed";
    public const string Merged = "Merged";
    public const string Archived = "Archived";
    public const string Failed = "Failed";
    public const string Cancelled = "Cancelled";

    /// <summary>A file in one of these has nothing left to do: the watchdog never looks at it.</summary>
    public static readonly IReadOnlySet<string> Final = new HashSet<string>(StringComparer.Ordinal) { Archived, Failed, Cancelled };

    /// <summary>A file in one of these is no longer being reconstructed: when all of a run's are, the run has ended for merging.</summary>
    public static readonly IReadOnlySet<string> PastReconstruction =
        new HashSet<string>(StringComparer.Ordinal) { Reconstructed, Merged, Archived, Failed, Cancelled };

    /// <summary>The states before those: a file in one of these may still produce outputs.</summary>
    public static readonly IReadOnlyList<string> BeforeReconstructed = [Registered, AwaitingCalibration, Staging, Staged, Queued, Reconstructing];

    /// <summary>Holding (or being given) a reconstruction slot.</summary>
    public static readonly IReadOnlyList<string> HoldingSlot = [Queued, Reconstructing];

    /// <summary>Not yet reconstructing: a cancelled campaign's files in these end at once.</summary>
    public static readonly IReadOnlyList<string> NotStarted = [Registered, AwaitingCalibration, Staging, Staged];

    /// <summary>Staged and beyond on the way to the archive (not failed or cancelled): what a forecast counts as past staging.</summary>
    public static readonly IReadOnlyList<string> StagedOrLater = [Staged, Queued, Reconstructing, Reconstructed, Merged, Archived];

    /// <summary>Every state a file can be in.</summary>
    public static readonly IReadOnlySet<string> All = new HashSet<string>(BeforeReconstructed.Concat(PastReconstruction), StringComparer.Ordinal);

    /// <summary>Every state in the order a file passes through them, the final ones last: how views list them.</summary>
    public static readonly ImmutableArray<string> InFlowOrder = [.. BeforeReconstructed, Reconstructed, Merged, Archived, Failed, Cancelled];
}
