using Pipeline.EventFormat;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.State;

namespace Pipeline.Production.Audit;

/// <summary>
/// What the audit of one campaign found: from the catalog and the file records alone, and, when the bytes were read
/// too, event by event (<see cref="Events"/>).
/// </summary>
public sealed record CampaignAuditReport(
    string Campaign,
    int RawFiles,
    int ArchivedRawFiles,
    int FailedRawFiles,
    int CancelledRawFiles,
    int UnfinishedRawFiles,
    int MergedFiles,
    int ManifestsVerified,
    IReadOnlyList<string> ManifestProblems,
    IReadOnlyDictionary<string, DatasetCatalogAudit> Datasets,
    IReadOnlyList<AuditFinding> Missing,
    IReadOnlyList<AuditFinding> Doubled,
    IReadOnlyList<AuditFinding> Unexpected,
    EventAudit? Events = null)
{
    /// <summary>
    /// Every raw file archived, each of its outputs in exactly one archived file of its dataset, every manifest sound;
    /// and when the bytes were read, every event where it belongs and every archived byte as catalogued.
    /// </summary>
    public bool Complete => CatalogComplete && Events is not { Complete: false };

    /// <summary>Complete as far as the catalog and the file records tell, whatever the bytes say.</summary>
    public bool CatalogComplete => RawFiles > 0 && ArchivedRawFiles == RawFiles && ManifestProblems.Count == 0
        && Missing.Count == 0 && Doubled.Count == 0 && Unexpected.Count == 0;
}

/// <summary>
/// The events of a campaign read from the bytes: those its raw files hold for each dataset (by the trigger bits the
/// file was registered with), and those its archived merged files hold, each copy's Adler-32 verified as it is read.
/// </summary>
public sealed record EventAudit(
    long EventsIn,
    long EventsExpected,
    long EventsArchived,
    long EventsLost,
    long EventsDuplicated,
    long EventsUnexpected,
    int ChecksumsVerified,
    int ChecksumsBad,
    IReadOnlyDictionary<string, DatasetEventAudit> Datasets)
{
    public bool Complete => EventsLost == 0 && EventsDuplicated == 0 && EventsUnexpected == 0 && ChecksumsBad == 0;
}

public sealed record DatasetEventAudit(long Expected, long Archived, long Lost, long Duplicated, long Unexpected);

/// <summary>One dataset of the campaign: raw files whose events it selects, the events they gave it, and what is wrong.</summary>
public sealed record DatasetCatalogAudit(int RawFiles, long Events, int Missing, int Doubled, int Unexpected);

/// <summary>A raw file's output for a dataset that is in no archived file (missing), in several (doubled), or belongs to no file of the campaign (unexpected).</summary>
public sealed record AuditFinding(string Dataset, string RawName, string OutputId, IReadOnlyList<string> MergedFiles);

/// <summary>
/// The one audit of a campaign: the API's, the command line's, the demo's and the tests'. It proves from the catalog
/// alone that every raw file of the campaign is in each dataset that selects it exactly once: the file records say
/// which outputs each raw file gave each dataset (a dataset that selects none of a file's events gets no output from
/// it); every archived merged file's manifest says which outputs it holds, with their raw files' checksums and event
/// counts, sealed by a digest. Each expected output must be in the manifest of exactly one archived file, and nothing
/// else may be. Asked to read the events too, it also reads every raw file and every archived copy (a full read of the
/// campaign's data: for a demo, a test or a deliberate check, not every hour) and compares event by event.
/// </summary>
public sealed class CampaignAudit(IFileSagaStore sagas, ICatalog catalog, StorageAreas areas)
{
    private const int MaxFindings = 1000;

    /// <param name="readEvents">Read the bytes too: every raw file, every archived copy (<see cref="CampaignAuditReport.Events"/>).</param>
    /// <param name="expectedFiles">How many file records the campaign has, for <paramref name="progress"/>'s total.</param>
    public async Task<CampaignAuditReport> RunAsync(string campaign, bool readEvents, CancellationToken cancellationToken,
        IProgress<WorkProgress>? progress = null, long expectedFiles = 0)
    {
        var rawToRead = new List<(string Name, IReadOnlyList<Contracts.DatasetSelection> Datasets)>();
        var simulated = false;
        int raw = 0, archived = 0, failed = 0, cancelled = 0, unfinished = 0;
        // (dataset, output id) → what the file record says the output is.
        var expected = new Dictionary<(string Dataset, string OutputId), (string RawName, string RawAdler32, long Events)>();
        string? after = null;
        do
        {
            var page = await sagas.ListAsync(new FileQuery(Campaign: campaign, After: after, Limit: 1000), cancellationToken);
            foreach (var summary in page.Files)
            {
                raw++;
                progress?.Report(new WorkProgress("file records read", raw, Math.Max(expectedFiles, raw)));
                switch (summary.State)
                {
                    case FileStates.Archived: archived++; break;
                    case FileStates.Failed: failed++; continue;
                    case FileStates.Cancelled: cancelled++; continue;
                    default: unfinished++; break;
                }
                if (await sagas.LoadAsync(summary.Id, cancellationToken) is not { } file)
                {
                    continue;
                }
                foreach (var output in file.Outputs)
                {
                    expected[(output.Output.Dataset, output.Output.OutputId)] = (file.LogicalName, file.Adler32, output.Output.Events);
                }
                simulated |= file.Simulated;
                rawToRead.Add((file.LogicalName, file.Datasets));
            }
            after = page.Next;
        }
        while (after is not null);

        var problems = new List<string>();
        var placed = new Dictionary<(string Dataset, string OutputId), List<string>>();
        var placedSource = new Dictionary<(string Dataset, string OutputId), ManifestSource>();
        var verified = 0;
        var merged = await catalog.ListAsync(CatalogEntry.Merged, campaign, cancellationToken);
        // A file kept in several archive areas is one merged file: every copy's manifest is checked, its sources counted once.
        var mergedFiles = merged.GroupBy(e => e.Name, StringComparer.Ordinal).ToList();
        var manifestsRead = 0;
        foreach (var copies in mergedFiles)
        {
            progress?.Report(new WorkProgress("merged files' manifests read", ++manifestsRead, mergedFiles.Count));
            MergeManifest? counted = null;
            foreach (var entry in copies)
            {
                var manifest = MergeManifest.Parse(entry.Manifest);
                var problem = manifest switch
                {
                    null => "has no readable manifest",
                    { DigestHolds: false } => "has a manifest whose digest does not match its content",
                    _ when manifest.Size != entry.Size || !string.Equals(manifest.Adler32, entry.Adler32, StringComparison.OrdinalIgnoreCase) || manifest.Events != entry.Events =>
                        $"is catalogued as {entry.Size} bytes, adler32 {entry.Adler32}, {entry.Events} events but its manifest says {manifest.Size}, {manifest.Adler32}, {manifest.Events}",
                    _ when manifest.Campaign != campaign || manifest.Dataset != entry.Dataset => $"has a manifest of {manifest.Campaign}/{manifest.Dataset}",
                    _ when manifest.Sources.Sum(s => s.Events) != manifest.Events => $"lists sources of {manifest.Sources.Sum(s => s.Events)} events for {manifest.Events}",
                    _ when counted is not null && counted.Digest != manifest.Digest => "has copies with different manifests",
                    _ => null,
                };
                if (problem is not null)
                {
                    problems.Add($"{entry.Name} in {entry.Area} {problem}");
                    continue;
                }
                verified++;
                counted ??= manifest;
            }
            if (counted is null)
            {
                continue;
            }
            foreach (var source in counted.Sources)
            {
                var key = (counted.Dataset, source.OutputId);
                if (!placed.TryGetValue(key, out var files))
                {
                    placed[key] = files = [];
                    placedSource[key] = source;
                }
                files.Add(copies.Key);
                if (expected.TryGetValue(key, out var want) && (want.Events != source.Events || !string.Equals(want.RawAdler32, source.RawAdler32, StringComparison.OrdinalIgnoreCase)))
                {
                    problems.Add($"{copies.Key} holds {source.Events} events of {source.RawName} (adler32 {source.RawAdler32}); its file record says {want.Events} events of a raw file with adler32 {want.RawAdler32}");
                }
            }
        }

        var missing = new List<AuditFinding>();
        var doubled = new List<AuditFinding>();
        var unexpected = new List<AuditFinding>();
        var datasets = new SortedDictionary<string, (HashSet<string> Raw, long Events, int Missing, int Doubled, int Unexpected)>(StringComparer.Ordinal);
        (HashSet<string> Raw, long Events, int Missing, int Doubled, int Unexpected) Of(string dataset) =>
            datasets.TryGetValue(dataset, out var d) ? d : datasets[dataset] = ([], 0, 0, 0, 0);
        foreach (var (key, want) in expected)
        {
            var d = Of(key.Dataset);
            d.Raw.Add(want.RawName);
            var files = placed.GetValueOrDefault(key) ?? [];
            if (files.Count == 0)
            {
                d.Missing++;
                Add(missing, new AuditFinding(key.Dataset, want.RawName, key.OutputId, []));
            }
            else
            {
                d.Events += want.Events;
                if (files.Count > 1)
                {
                    d.Doubled++;
                    Add(doubled, new AuditFinding(key.Dataset, want.RawName, key.OutputId, files));
                }
            }
            datasets[key.Dataset] = d;
        }
        foreach (var (key, files) in placed.Where(p => !expected.ContainsKey(p.Key)))
        {
            var d = Of(key.Dataset);
            d.Unexpected++;
            datasets[key.Dataset] = d;
            Add(unexpected, new AuditFinding(key.Dataset, placedSource[key].RawName, key.OutputId, files));
        }

        // A simulated file has no raw file to read: a Monte Carlo campaign is audited from the catalog alone.
        var events = readEvents && !simulated ? await ReadEventsAsync(rawToRead, merged, progress, cancellationToken) : null;
        return new CampaignAuditReport(campaign, raw, archived, failed, cancelled, unfinished, merged.Select(e => e.Name).Distinct(StringComparer.Ordinal).Count(),
            verified, problems.Take(MaxFindings).ToList(),
            datasets.ToDictionary(d => d.Key, d => new DatasetCatalogAudit(d.Value.Raw.Count, d.Value.Events, d.Value.Missing, d.Value.Doubled, d.Value.Unexpected), StringComparer.Ordinal),
            missing, doubled, unexpected, events);
    }

    /// <summary>
    /// The events each dataset must hold, read from the raw files (in their catalogued area) by the trigger bits their
    /// files were registered with, against those the archived merged files hold; every archived copy is verified, a
    /// file's events are counted once whatever its copies.
    /// </summary>
    private async Task<EventAudit> ReadEventsAsync(IReadOnlyList<(string Name, IReadOnlyList<Contracts.DatasetSelection> Datasets)> rawFiles,
        IReadOnlyList<CatalogEntry> merged, IProgress<WorkProgress>? progress, CancellationToken cancellationToken)
    {
        var expected = new Dictionary<string, HashSet<EventKey>>(StringComparer.Ordinal);
        long eventsIn = 0;
        var read = 0;
        foreach (var (name, selections) in rawFiles)
        {
            progress?.Report(new WorkProgress("raw files read", ++read, rawFiles.Count));
            foreach (var selection in selections)
            {
                expected.TryAdd(selection.Name, []);
            }
            var area = (await catalog.FindAsync(name, cancellationToken)).FirstOrDefault(e => e.Kind == CatalogEntry.Raw)?.Area ?? StorageOptions.Archive;
            await using var reader = await EventReader.OpenAsync(await areas[area].OpenReadAsync(name, cancellationToken), cancellationToken: cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                eventsIn++;
                foreach (var dataset in selections.Where(d => (reader.Current.Trigger & d.TriggerMask) != 0))
                {
                    expected[dataset.Name].Add(reader.Current.Key);
                }
            }
        }

        var archived = expected.Keys.ToDictionary(d => d, _ => new Dictionary<EventKey, int>(), StringComparer.Ordinal);
        int verified = 0, bad = 0;
        long eventsArchived = 0;
        var counted = new HashSet<string>(StringComparer.Ordinal);
        var copiesRead = 0;
        foreach (var entry in merged.OrderBy(e => e.Area == StorageOptions.Archive ? 0 : 1))
        {
            progress?.Report(new WorkProgress("archived copies read", ++copiesRead, merged.Count));
            await using var file = new ChecksummingStream(await areas[entry.Area].OpenReadAsync(entry.Name, cancellationToken));
            if (!counted.Add(entry.Name))
            {
                await file.CopyToAsync(Stream.Null, cancellationToken);
            }
            else
            {
                var counts = archived.TryGetValue(entry.Dataset ?? "", out var known) ? known : archived[entry.Dataset ?? ""] = [];
                await using var reader = await EventReader.OpenAsync(file, leaveOpen: true, cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    eventsArchived++;
                    counts[reader.Current.Key] = counts.GetValueOrDefault(reader.Current.Key) + 1;
                }
            }
            if (file.Length == entry.Size && Adler32Checksum.Same(Adler32Checksum.Format(file.Adler32), entry.Adler32))
            {
                verified++;
            }
            else
            {
                bad++;
            }
        }

        var perDataset = new SortedDictionary<string, DatasetEventAudit>(StringComparer.Ordinal);
        foreach (var (name, counts) in archived)
        {
            var keys = expected.GetValueOrDefault(name) ?? [];
            perDataset[name] = new DatasetEventAudit(
                keys.Count,
                counts.Values.Sum(),
                keys.Count(k => !counts.ContainsKey(k)),
                counts.Values.Where(c => c > 1).Sum(c => (long)c - 1),
                counts.Keys.Count(k => !keys.Contains(k)));
        }
        return new EventAudit(eventsIn, perDataset.Values.Sum(d => d.Expected), eventsArchived, perDataset.Values.Sum(d => d.Lost),
            perDataset.Values.Sum(d => d.Duplicated), perDataset.Values.Sum(d => d.Unexpected), verified, bad, perDataset);
    }

    // A campaign with millions of files could have as many findings: the report lists the first ones, the counts say how many.
    private static void Add(List<AuditFinding> findings, AuditFinding finding)
    {
        if (findings.Count < MaxFindings)
        {
            findings.Add(finding);
        }
    }
}
