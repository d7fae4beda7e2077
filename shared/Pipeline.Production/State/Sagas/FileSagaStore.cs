namespace Pipeline.Production.State;

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

/// <summary>The concern's store among the backend's, by name.</summary>
public static class FileSagaStoreAccess
{
    extension(StoreBackend backend)
    {
        public IFileSagaStore Sagas => backend.Get<IFileSagaStore>();
    }
}
