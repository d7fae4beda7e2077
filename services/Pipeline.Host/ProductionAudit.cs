using Pipeline.Contracts;
using Pipeline.EventFormat;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.State;

namespace Pipeline.Host;

/// <summary>What an audit of a finished production found, as `make demo` prints it.</summary>
public sealed record AuditReport(
    int Runs,
    int RawFiles,
    int ArchivedFiles,
    int FailedFiles,
    long EventsIn,
    long EventsExpected,
    long EventsArchived,
    long EventsLost,
    long EventsDuplicated,
    long EventsUnexpected,
    int MergedFiles,
    int ChecksumsVerified,
    int ChecksumsBad,
    IReadOnlyDictionary<string, DatasetAudit> Datasets)
{
    public bool Complete => ArchivedFiles == RawFiles && FailedFiles == 0 && EventsLost == 0 && EventsDuplicated == 0
        && EventsUnexpected == 0 && ChecksumsBad == 0 && ChecksumsVerified == MergedFiles;
}

public sealed record DatasetAudit(long Expected, long Archived, long Lost, long Duplicated, long Unexpected);

/// <summary>
/// Checks a production from the bytes up: reads every raw file to learn which events each dataset
/// must hold, reads every archived merged file (verifying its catalogued Adler-32 as it goes), and
/// compares event by event. Meant for the demo and the tests' scale, not for a full campaign.
/// </summary>
public static class ProductionAudit
{
    public static async Task<AuditReport> RunAsync(
        IReadOnlyList<RunRecorded> runs,
        IReadOnlyList<DatasetSelection> datasets,
        string campaign,
        StorageAreas areas,
        IFileSagaStore sagas,
        ICatalog catalog,
        CancellationToken cancellationToken)
    {
        var expected = datasets.ToDictionary(d => d.Name, _ => new HashSet<EventKey>(), StringComparer.Ordinal);
        long eventsIn = 0;
        var rawFiles = runs.SelectMany(r => r.Files ?? []).ToList();
        foreach (var raw in rawFiles)
        {
            await using var reader = await EventReader.OpenAsync(await areas.Archive.OpenReadAsync(raw.Name!, cancellationToken), cancellationToken: cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                eventsIn++;
                foreach (var dataset in datasets.Where(d => (reader.Current.Trigger & d.TriggerMask) != 0))
                {
                    expected[dataset.Name].Add(reader.Current.Key);
                }
            }
        }

        var archived = datasets.ToDictionary(d => d.Name, _ => new Dictionary<EventKey, int>(), StringComparer.Ordinal);
        var merged = await catalog.ListAsync(CatalogEntry.Merged, campaign, cancellationToken);
        int verified = 0, bad = 0;
        long eventsArchived = 0;
        // A dataset may keep copies in several archive areas: every copy is verified, the events of a file are counted once.
        var counted = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in merged.OrderBy(e => e.Area == StorageOptions.Archive ? 0 : 1))
        {
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

        var perDataset = new SortedDictionary<string, DatasetAudit>(StringComparer.Ordinal);
        foreach (var (name, keys) in expected)
        {
            var counts = archived[name];
            perDataset[name] = new DatasetAudit(
                keys.Count,
                counts.Values.Sum(),
                keys.Count(k => !counts.ContainsKey(k)),
                counts.Values.Where(c => c > 1).Sum(c => (long)c - 1),
                counts.Keys.Count(k => !keys.Contains(k)));
        }
        foreach (var (name, counts) in archived.Where(a => !expected.ContainsKey(a.Key)))
        {
            perDataset[name] = new DatasetAudit(0, counts.Values.Sum(), 0, 0, counts.Count);
        }

        int archivedFiles = 0, failedFiles = 0;
        string? after = null;
        do
        {
            var page = await sagas.ListAsync(new FileQuery(Campaign: campaign, After: after, Limit: 1000), cancellationToken);
            archivedFiles += page.Files.Count(f => f.State == FileStates.Archived);
            failedFiles += page.Files.Count(f => f.State == FileStates.Failed);
            after = page.Next;
        }
        while (after is not null);

        return new AuditReport(
            runs.Count, rawFiles.Count, archivedFiles, failedFiles, eventsIn,
            perDataset.Values.Sum(d => d.Expected), eventsArchived,
            perDataset.Values.Sum(d => d.Lost), perDataset.Values.Sum(d => d.Duplicated), perDataset.Values.Sum(d => d.Unexpected),
            merged.Count, verified, bad, perDataset);
    }
}
