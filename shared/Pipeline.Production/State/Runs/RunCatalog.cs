using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.State;

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
    /// when <paramref name="reason"/> is null; false when no such entry exists. Reconciliation's marks carry its
    /// <paramref name="fence"/> and are refused with <see cref="StaleFenceException"/> once stale.
    /// </summary>
    Task<bool> MarkBadAsync(string name, string area, string? reason, SingletonFence? fence, CancellationToken cancellationToken);
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

/// <summary>The concern's store among the backend's, by name.</summary>
public static class RunRegistryAccess
{
    extension(StoreBackend backend)
    {
        public IRunRegistry Runs => backend.Get<IRunRegistry>();
        public ICatalog Catalog => backend.Get<ICatalog>();
    }
}
