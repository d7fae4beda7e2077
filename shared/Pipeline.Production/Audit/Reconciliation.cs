using System.Globalization;
using Microsoft.Extensions.Logging;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Control;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Production.Audit;

/// <summary>How a reconciliation sweep runs.</summary>
/// <param name="VerifyChecksums">Read every catalogued byte and compare Adler-32s, not only sizes (slow: a full read of the archive).</param>
/// <param name="DarkAfter">A file the catalog lacks counts only once it is this old: younger ones may be archive writes not yet catalogued.</param>
/// <param name="DryRun">Report only: mark nothing, restore nothing, move nothing.</param>
public sealed record ReconciliationOptions(bool VerifyChecksums = false, TimeSpan? DarkAfter = null, bool DryRun = false)
{
    public static readonly TimeSpan DefaultDarkAfter = TimeSpan.FromHours(1);

    /// <summary>The longest a dark file may be given (a year), wherever the age is set.</summary>
    public const double MaxDarkAfterMinutes = 525_600;

    public TimeSpan EffectiveDarkAfter => DarkAfter ?? DefaultDarkAfter;
}

/// <summary>A sweep asked for while another runs: nothing was done.</summary>
public sealed class ReconciliationBusyException(string message) : Exception(message);

/// <summary>A catalogued copy the sweep found wanting, and what became of it.</summary>
public sealed record ReconciledCopy(string Area, string Name, string Kind, string Problem, string Outcome);

/// <summary>A file on storage that the catalog does not know, and where it was moved.</summary>
public sealed record DarkFile(string Area, string Name, long Size, string? QuarantinedAs);

/// <summary>What a sweep found. Clean when every catalogued copy is where the catalog says and nothing else is there.</summary>
public sealed record ReconciliationReport(
    DateTimeOffset At,
    bool DryRun,
    bool ChecksumsVerified,
    int CopiesChecked,
    IReadOnlyList<ReconciledCopy> Bad,
    IReadOnlyList<ReconciledCopy> Restored,
    IReadOnlyList<DarkFile> Dark,
    IReadOnlyList<string> AreasNotListed)
{
    public bool Clean => Bad.Count == 0 && Restored.Count == 0 && Dark.Count == 0;
}

/// <summary>
/// Compares the catalog with what the archive areas hold, in the manner of Rucio's consistency checks. A catalogued copy
/// that is missing, of the wrong size or (when asked) the wrong checksum is marked bad in the catalog; when another
/// area holds a sound copy of the same file it is copied back (checksummed while it moves) and the mark cleared,
/// otherwise an alert says what is lost and what it takes to make it again. A wrong copy is moved aside, never
/// overwritten. A file on storage that the catalog lacks is reported and moved into the area's quarantine folder, never
/// deleted. A copy marked bad that is found sound again (an operator restored it) has its mark cleared.
/// </summary>
public sealed class Reconciler(ICatalog catalog, IAlerts alerts, ArchiveLibrary archives, SingletonLeases singletons, TimeProvider time, ILogger<Reconciler> logger)
{
    /// <summary>How long a sweep asked for by hand waits for the periodic one (or another operator's) to give the lease up.</summary>
    public static readonly TimeSpan LeaseWait = TimeSpan.FromSeconds(30);
    /// <summary>The folder inside each area that holds what the sweep moved aside: nothing in it is ever deleted by the pipeline.</summary>
    public const string QuarantineFolder = ".quarantine";

    public static string AlertKey(string area, string name) => $"reconciliation:{area}/{name}";

    /// <param name="fence">
    /// The reconciliation singleton's term: every catalog mark carries it (refused once stale), and the moves and copies on
    /// storage stop with <paramref name="cancellationToken"/>, which ends with the term.
    /// </param>
    public async Task<ReconciliationReport> RunAsync(ReconciliationOptions options, SingletonFence? fence, CancellationToken cancellationToken, IProgress<WorkProgress>? progress = null)
    {
        var now = time.GetUtcNow();
        var entries = new List<CatalogEntry>();
        entries.AddRange(await catalog.ListAsync(CatalogEntry.Raw, null, cancellationToken));
        entries.AddRange(await catalog.ListAsync(CatalogEntry.Merged, null, cancellationToken));
        var byName = entries.ToLookup(e => e.Name, StringComparer.Ordinal);
        var folders = archives.All.OfType<AreaArchive>().ToDictionary(a => a.Name, a => a.Area, StringComparer.Ordinal);
        var bad = new List<ReconciledCopy>();
        var restored = new List<ReconciledCopy>();
        var notListed = archives.All.Where(a => a is not AreaArchive).Select(a => a.Name).ToList();
        var checkedCopies = 0;
        var toCheck = entries.Where(e => folders.ContainsKey(e.Area)).ToList();

        foreach (var entry in toCheck)
        {
            cancellationToken.ThrowIfCancellationRequested();
            checkedCopies++;
            progress?.Report(new WorkProgress("catalogued copies checked", checkedCopies, toCheck.Count));
            var area = folders[entry.Area];
            var problem = await ProblemOfAsync(area, entry, options.VerifyChecksums || entry.Bad is not null, cancellationToken);
            if (problem is null)
            {
                if (entry.Bad is not null && !options.DryRun)
                {
                    // Sound again (restored by hand, or by an earlier sweep that stopped before clearing the mark).
                    await catalog.MarkBadAsync(entry.Name, entry.Area, null, fence, cancellationToken);
                    await alerts.ResolveAsync(AlertKey(entry.Area, entry.Name), cancellationToken);
                    logger.LogInformation("Catalogued copy {Name} in {Area} is sound again; its bad mark is cleared", entry.Name, entry.Area);
                }
                continue;
            }
            if (options.DryRun)
            {
                bad.Add(new ReconciledCopy(entry.Area, entry.Name, entry.Kind, problem, "dry run: nothing changed"));
                continue;
            }
            await catalog.MarkBadAsync(entry.Name, entry.Area, problem, fence, cancellationToken);
            if (await area.ExistsAsync(entry.Name, cancellationToken))
            {
                var aside = QuarantineName(entry.Name, now);
                await area.MoveAsync(entry.Name, aside, cancellationToken);
                logger.LogWarning("Moved the wrong copy of {Name} in {Area} to {Quarantined}", entry.Name, entry.Area, aside);
            }
            if (await RestoreAsync(entry, folders, byName[entry.Name], cancellationToken) is { } source)
            {
                await catalog.MarkBadAsync(entry.Name, entry.Area, null, fence, cancellationToken);
                restored.Add(new ReconciledCopy(entry.Area, entry.Name, entry.Kind, problem, $"restored from {source}"));
                logger.LogWarning("Catalogued copy {Name} in {Area} was bad ({Problem}); restored from the copy in {Source}", entry.Name, entry.Area, problem, source);
                await alerts.ResolveAsync(AlertKey(entry.Area, entry.Name), cancellationToken);
                continue;
            }
            var remedy = entry.Kind == CatalogEntry.Raw
                ? "no other copy holds it: the raw file is lost unless it can be brought back from the experiment"
                : "no other copy holds it: its raw files need reconstructing again to make it anew";
            bad.Add(new ReconciledCopy(entry.Area, entry.Name, entry.Kind, problem, $"marked bad; {remedy}"));
            var text = $"Catalogued {entry.Kind} file {entry.Name} in {entry.Area}: {problem}; {remedy}.";
            logger.LogError("{Alert}", text);
            await alerts.RaiseAsync(AlertKey(entry.Area, entry.Name), "catalog-bad", "critical", text, cancellationToken);
        }

        var dark = new List<DarkFile>();
        var areasListed = 0;
        foreach (var (areaName, area) in folders)
        {
            progress?.Report(new WorkProgress("areas listed for files the catalog lacks", ++areasListed, folders.Count));
            var catalogued = entries.Where(e => e.Area == areaName).Select(e => e.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var file in await FilesAsync(area, cancellationToken))
            {
                if (catalogued.Contains(file.Name) || now - file.Modified < options.EffectiveDarkAfter)
                {
                    continue;
                }
                string? moved = null;
                if (!options.DryRun)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    moved = QuarantineName(file.Name, now);
                    await area.MoveAsync(file.Name, moved, cancellationToken);
                    var text = $"File {file.Name} in {areaName} ({file.Size} bytes) is not in the catalog; moved to {moved} for an operator to look at.";
                    logger.LogWarning("{Alert}", text);
                    await alerts.RaiseAsync(AlertKey(areaName, file.Name), "catalog-dark", "warning", text, cancellationToken);
                }
                dark.Add(new DarkFile(areaName, file.Name, file.Size, moved));
            }
        }
        var report = new ReconciliationReport(now, options.DryRun, options.VerifyChecksums, checkedCopies, bad, restored, dark, notListed);
        logger.LogInformation("Reconciliation checked {Copies} catalogued copies: {Bad} bad, {Restored} restored, {Dark} not in the catalog",
            checkedCopies, bad.Count, restored.Count, dark.Count);
        return report;
    }

    /// <summary>
    /// A sweep asked for by an operator (the API, the command line), under the same singleton lease as the periodic sweep:
    /// two sweeps never move the same files at once. Refused with <see cref="ReconciliationBusyException"/> when another
    /// instance kept the lease for <see cref="LeaseWait"/>.
    /// </summary>
    public async Task<ReconciliationReport> RunExclusiveAsync(ReconciliationOptions options, CancellationToken cancellationToken, IProgress<WorkProgress>? progress = null) =>
        await singletons.RunAsync(Singletons.Reconciliation, LeaseWait, (fence, term) => RunAsync(options, fence, term, progress), cancellationToken)
        ?? throw new ReconciliationBusyException(
            $"Another instance holds the reconciliation lease (a sweep is running) and kept it for {LeaseWait.TotalSeconds:F0} s; ask again when it has finished.");

    private static async Task<string?> ProblemOfAsync(StorageArea area, CatalogEntry entry, bool verify, CancellationToken cancellationToken)
    {
        if (await area.StatAsync(entry.Name, cancellationToken) is not { } stored)
        {
            return "missing from storage";
        }
        if (stored.Size != entry.Size)
        {
            return $"holds {stored.Size} bytes, catalogued {entry.Size}";
        }
        // A remote endpoint keeps its own checksum of what it holds: a disagreement needs no read to be seen.
        if (stored.StoredAdler32 is { } reported && !Adler32Checksum.Same(reported, entry.Adler32))
        {
            return $"the storage reports adler32 {reported}, catalogued {entry.Adler32}";
        }
        if (verify)
        {
            var (_, adler) = await area.ChecksumAsync(entry.Name, cancellationToken);
            if (!Adler32Checksum.Same(Adler32Checksum.Format(adler), entry.Adler32))
            {
                return $"adler32 {Adler32Checksum.Format(adler)}, catalogued {entry.Adler32}";
            }
        }
        return null;
    }

    /// <summary>Copies a sound copy of the file from another area back; returns that area's name, or null when none is sound.</summary>
    private async Task<string?> RestoreAsync(CatalogEntry entry, IReadOnlyDictionary<string, StorageArea> folders, IEnumerable<CatalogEntry> copies, CancellationToken cancellationToken)
    {
        foreach (var other in copies.Where(c => c.Area != entry.Area && c.Bad is null && folders.ContainsKey(c.Area)))
        {
            var from = folders[other.Area];
            if (await ProblemOfAsync(from, other, verify: true, cancellationToken) is not null)
            {
                continue;
            }
            (long Size, uint Adler32) copied;
            try
            {
                copied = await StreamingCopy.CopyAsync(from, other.Name, folders[entry.Area], entry.Name, cancellationToken, entry.Adler32);
            }
            catch (Exception ex) when (ex is InvalidDataException or Infrastructure.Storage.Http.RemoteChecksumMismatchException)
            {
                // Compared before the copy took its name: nothing was written under it.
                logger.LogWarning("Restoring {Name} into {Area} from {Source} failed: {Reason}; not kept", entry.Name, entry.Area, other.Area, ex.Message);
                continue;
            }
            var (size, adler) = copied;
            if (size == entry.Size && Adler32Checksum.Same(Adler32Checksum.Format(adler), entry.Adler32))
            {
                return other.Area;
            }
            // The bytes changed on the way: what was written is not kept under the catalogued name.
            await folders[entry.Area].DeleteAsync(entry.Name, cancellationToken);
            logger.LogWarning("Restoring {Name} into {Area} from {Source} gave {Size} bytes adler32 {Adler32}; not kept", entry.Name, entry.Area, other.Area, size, Adler32Checksum.Format(adler));
        }
        return null;
    }

    private static string QuarantineName(string name, DateTimeOffset at) =>
        $"{QuarantineFolder}/{at.ToString("yyyyMMdd'T'HHmmss", CultureInfo.InvariantCulture)}/{name}";

    /// <summary>
    /// Every file the area holds outside its quarantine, minus temporary files of writes in progress: listed whole
    /// before anything is moved (a folder's listing, a PROPFIND or an xrdfs ls), so a move never disturbs the listing.
    /// </summary>
    private static async Task<List<AreaEntry>> FilesAsync(StorageArea area, CancellationToken cancellationToken)
    {
        var files = new List<AreaEntry>();
        await foreach (var file in area.ListAsync("", cancellationToken))
        {
            if (!file.Name.StartsWith(QuarantineFolder + "/", StringComparison.Ordinal) && !file.Name.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal))
            {
                files.Add(file);
            }
        }
        files.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return files;
    }
}
