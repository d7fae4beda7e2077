using System.Collections.Immutable;
using Pipeline.Contracts;

namespace Pipeline.Production.State;

/// <summary>What operators have paused, for every instance of every service to see.</summary>
public interface IControlStore
{
    /// <summary>Pauses a stage (by its queue name); pausing one already paused keeps who paused it first.</summary>
    Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Resumes a stage; true if it was paused.</summary>
    Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken);

    Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken);
}

public sealed record PausedStage(string Stage, string By, DateTimeOffset Since);

/// <summary>The health watcher's record: the last heartbeat of every service instance, and alerts raised and resolved.</summary>
public interface IHealthStore
{
    /// <summary>Keeps the latest heartbeat of an instance (an older one arriving late changes nothing).</summary>
    Task RecordHeartbeatAsync(InstanceRecord heartbeat, CancellationToken cancellationToken);

    Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Raises an alert, or refreshes it if one with the same key is active. True if it was not active before
    /// (so that whoever must be told is told once per occurrence).
    /// </summary>
    Task<bool> RaiseAlertAsync(string key, string kind, string severity, string message, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Resolves the active alert with this key; true if there was one.</summary>
    Task<bool> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Alerts, newest first: the active ones only, or all including resolved.</summary>
    Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken);
}

public sealed record InstanceRecord(string Instance, string Services, string Host, DateTimeOffset StartedAt, DateTimeOffset LastSeenAt, IReadOnlyList<StageLoad> Load);

public sealed record AlertRecord(string Key, string Kind, string Severity, string Message, DateTimeOffset RaisedAt, DateTimeOffset LastSeenAt, DateTimeOffset? ResolvedAt)
{
    public bool Active => ResolvedAt is null;
}

/// <summary>
/// Files and bytes each stage finished for each campaign, per minute and per hour: production's throughput over time,
/// for every instance together. Round-robin like an RRD: each resolution keeps a fixed window
/// (<see cref="ThroughputWindow"/>), and a bucket older than its window is dropped as new ones are written, so the log
/// stays the same size however long production runs.
/// </summary>
public interface IActivityLog
{
    /// <summary>Adds one finished step of a stage for a campaign, with its bytes, to the minute and the hour it finished in.</summary>
    Task RecordAsync(string stage, string campaign, DateTimeOffset at, long bytes, CancellationToken cancellationToken);

    /// <summary>The buckets of one resolution from the one holding <paramref name="since"/> on, in time order, then stage and campaign.</summary>
    Task<IReadOnlyList<StageActivity>> ListActivityAsync(ThroughputResolution resolution, DateTimeOffset since, CancellationToken cancellationToken);
}

public enum ThroughputResolution
{
    Minute,
    Hour,
}

/// <summary>How long each resolution is kept, and how a time falls into its bucket.</summary>
public static class ThroughputWindow
{
    /// <summary>Per minute for the last six hours: 360 buckets per stage and campaign.</summary>
    public static readonly TimeSpan Minutes = TimeSpan.FromHours(6);

    /// <summary>Per hour for the last five weeks: 840 buckets per stage and campaign.</summary>
    public static readonly TimeSpan Hours = TimeSpan.FromDays(35);

    public static TimeSpan Kept(ThroughputResolution resolution) => resolution == ThroughputResolution.Minute ? Minutes : Hours;

    public static TimeSpan Step(ThroughputResolution resolution) => resolution == ThroughputResolution.Minute ? TimeSpan.FromMinutes(1) : TimeSpan.FromHours(1);

    public static DateTimeOffset BucketOf(ThroughputResolution resolution, DateTimeOffset at)
    {
        var step = Step(resolution).Ticks;
        var utc = at.UtcTicks;
        return new DateTimeOffset(utc - (utc % step), TimeSpan.Zero);
    }

    /// <summary>The first bucket still kept when the bucket holding <paramref name="now"/> is being written.</summary>
    public static DateTimeOffset OldestKept(ThroughputResolution resolution, DateTimeOffset now) =>
        BucketOf(resolution, now) - Kept(resolution) + Step(resolution);
}

/// <summary>What one stage finished for one campaign in one bucket (a minute or an hour, starting <paramref name="At"/>).</summary>
public sealed record StageActivity(string Stage, string Campaign, DateTimeOffset At, long Files, long Bytes);

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

/// <summary>A write lost a race: the document changed (or appeared) since it was read. Retrying re-reads it.</summary>
public sealed class ConcurrencyConflictException(string message) : Exception(message);

/// <summary>The file sagas: load, insert and compare-and-set update, plus the queries operators need.</summary>
public interface IFileSagaStore
{
    Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken);

    /// <summary>Inserts a new saga; throws <see cref="ConcurrencyConflictException"/> if one with that id exists.</summary>
    Task InsertAsync(FileState state, CancellationToken cancellationToken);

    /// <summary>
    /// Loads many new sagas at once (imports, benchmarks). An id that exists already throws
    /// <see cref="ConcurrencyConflictException"/>; the sagas before it in the batch may be stored.
    /// </summary>
    Task BulkInsertAsync(IEnumerable<FileState> states, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces the saga if its stored version is still <paramref name="expectedVersion"/>; the stored
    /// version becomes expectedVersion + 1. Throws <see cref="ConcurrencyConflictException"/> otherwise.
    /// </summary>
    Task UpdateAsync(FileState state, int expectedVersion, CancellationToken cancellationToken);

    Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken);

    Task<IReadOnlyList<StateCount>> CountByStateAsync(CancellationToken cancellationToken);

    /// <summary>Failed files grouped by campaign, stage, failure signature and release, the largest group first.</summary>
    Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken);

    /// <summary>
    /// Files in a non-final state whose deadline passed, or that were last written before <paramref name="updatedBefore"/>
    /// (except files reconstructing in a batch job, which wait for their deadline).
    /// </summary>
    Task<IReadOnlyList<StalledFile>> FindStalledAsync(DateTimeOffset now, DateTimeOffset? updatedBefore, int limit, CancellationToken cancellationToken);
}

public sealed record FileQuery(
    string? Campaign = null,
    string? State = null,
    int? RunFrom = null,
    int? RunTo = null,
    string? Stream = null,
    string? After = null,
    int Limit = 100,
    string? FailureSignature = null,
    string? Dataset = null);

public sealed record FileSummary(
    Guid Id,
    string Campaign,
    int Run,
    string Stream,
    string LogicalName,
    string State,
    int Attempt,
    DateTimeOffset UpdatedAt,
    string? FailureReason);

/// <summary>A page of files in (run, name) order; <see cref="Next"/> is the cursor for the following page.</summary>
public sealed record FilePage(IReadOnlyList<FileSummary> Files, string? Next);

public sealed record StateCount(string Campaign, string State, long Files);

/// <summary>One row of the failure table: files that failed the same way in the same campaign and release.</summary>
public sealed record FailureGroup(string Campaign, string Stage, string Signature, string? Release, long Files, DateTimeOffset LastFailedAt, string ExampleReason)
{
    /// <summary>Stage and signature of failed files recorded before failures were classified.</summary>
    public const string Unclassified = "unclassified";
}

public sealed record StalledFile(Guid Id, int Version, string State, string Campaign, int Run, string Stream);

/// <summary>Runs as announced, so that the same run announced twice is registered once.</summary>
public interface IRunRegistry
{
    /// <summary>Registers a run and catalogs its raw files in one step, keeping the announcement (files and conditions).</summary>
    Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken);

    Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken);

    /// <summary>The announcements of runs after <paramref name="afterRun"/>, in run order: what reprocessing and Monte Carlo campaigns walk through.</summary>
    Task<IReadOnlyList<RunRecorded>> ListAnnouncementsAsync(int afterRun, int limit, CancellationToken cancellationToken);
}

public enum RunRegistration
{
    /// <summary>First time this run was seen.</summary>
    New,

    /// <summary>Seen before with exactly the same files: nothing new to do.</summary>
    AlreadyRegistered,

    /// <summary>Seen before with different files: refused.</summary>
    Conflicting,
}

public sealed record RunRecord(int Run, int Files, DateTimeOffset RegisteredAt);

/// <summary>Where every catalogued file is: raw inputs and archived merged outputs.</summary>
public interface ICatalog
{
    /// <summary>Adds an entry; the same entry added again is a no-op, a different one under the same name and area is a conflict.</summary>
    Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken);

    Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken);

    Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken);

    /// <summary>
    /// Marks a catalogued copy bad (its storage no longer holds it as catalogued) with the reason, or clears the mark
    /// when <paramref name="reason"/> is null; false when no such entry exists.
    /// </summary>
    Task<bool> MarkBadAsync(string name, string area, string? reason, CancellationToken cancellationToken);
}

public sealed record CatalogEntry(
    string Name,
    string Area,
    string Kind,
    string? Campaign,
    string? Dataset,
    long Size,
    string Adler32,
    long Events,
    IReadOnlyList<MergedSource> Sources,
    DateTimeOffset CreatedAt,
    string? Manifest = null,
    string? Bad = null)
{
    public const string Raw = "raw";
    public const string Merged = "merged";
}

/// <summary>The merger's durable buffer: outputs waiting per dataset, and the merged files made from them.</summary>
public interface IMergeStore
{
    /// <summary>Adds an output to its dataset's buffer, or returns the stored record if it is already known.</summary>
    Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken);

    Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken);

    /// <summary>Pending outputs of a dataset in (run, section, stream) order.</summary>
    Task<IReadOnlyList<PendingOutput>> ListPendingAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Records a merged file and marks its outputs as merged, all or nothing. Returns false (and changes
    /// nothing) if any of the outputs was merged meanwhile by someone else.
    /// </summary>
    Task<bool> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken);

    Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken);

    Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken);

    /// <summary>Merged files not yet archived that were last touched before <paramref name="updatedBefore"/>.</summary>
    Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken);

    /// <summary>Merged files not yet archived, per campaign (campaigns with none are left out).</summary>
    Task<IReadOnlyDictionary<string, int>> CountUnarchivedAsync(CancellationToken cancellationToken);

    Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken);

    /// <summary>A dataset's merged files not yet archived, in the order they were made (the order they must reach the archive).</summary>
    Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedOfDatasetAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken);

    /// <summary>Per run from <paramref name="fromRun"/> to <paramref name="toRun"/>, how many outputs of a dataset the merger has received (merged or waiting).</summary>
    Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken);

    /// <summary>The highest run with an output of the dataset already merged (null if none): every run up to it was complete when it was merged.</summary>
    Task<int?> HighestMergedRunAsync(string campaign, string dataset, CancellationToken cancellationToken);
}

public sealed record PendingOutput(
    string OutputId,
    Guid FileId,
    string Campaign,
    string Dataset,
    int Run,
    string Stream,
    int Section,
    string RawName,
    string Name,
    long Size,
    string Adler32,
    long Events,
    DateTimeOffset AddedAt,
    string? MergedName,
    string? RawAdler32 = null);

public sealed record DatasetBuffer(string Campaign, string Dataset, int Outputs, long Bytes, DateTimeOffset OldestAddedAt, DateTimeOffset NewestAddedAt);

public sealed record MergedFileRecord(
    string Name,
    string Campaign,
    string Dataset,
    long Size,
    string Adler32,
    long Events,
    bool Archived,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    string? Manifest = null);

public static class FailureGroups
{
    /// <summary>The failure table's order, the same for every store: biggest group first, then by name.</summary>
    public static IReadOnlyList<FailureGroup> InTableOrder(IEnumerable<FailureGroup> groups) =>
        [.. groups
            .OrderByDescending(g => g.Files)
            .ThenBy(g => g.Campaign, StringComparer.Ordinal)
            .ThenBy(g => g.Stage, StringComparer.Ordinal)
            .ThenBy(g => g.Signature, StringComparer.Ordinal)
            .ThenBy(g => g.Release, StringComparer.Ordinal)];
}
