using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Storage.Xrootd;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// The archive on a real XRootD server's nearline path: XRootD's file residency manager (frm_xfrd) migrates what is
/// written there to a simulated robot and stages files back on prepare requests; only the robot is simulated.
/// </summary>
public sealed partial class When_the_archive_is_an_endpoint_in_front_of_tape(TapeXrootdServer server) : IClassFixture<TapeXrootdServer>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    private Dictionary<string, string?> Settings(string top, double alertSeconds = 3600) => new()
    {
        ["Pipeline:Areas:archive"] = new Uri(server.TapeUri, $"{top}/archive").AbsoluteUri,
        ["Pipeline:Archives:archive:Kind"] = "Nearline",
        ["Pipeline:Archives:archive:Nearline:PollSeconds"] = "0.2",
        ["Pipeline:Archives:archive:Nearline:RecallFloorSeconds"] = "60",
        ["Pipeline:Archives:archive:Nearline:RecallSecondsPerFile"] = "5",
        ["Pipeline:Archives:archive:Nearline:MigrationAlertSeconds"] = alertSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        // Every file of the ingested runs in one batch, so the whole recall is one request: a window far longer than
        // the registration of twelve files takes, even on a machine busy with other tests (2 s once split them in two).
        ["Pipeline:Stager:BatchWindowMilliseconds"] = "10000",
    };

    [SkippableFact]
    public async Task Should_recall_files_on_k_volumes_with_k_mounts_and_count_merged_files_archived_only_once_on_tape()
    {
        server.Require();
        var top = $"pipeline-{Guid.NewGuid():N}";
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: Settings(top));
        var archive = pipeline.Services.GetRequiredService<ArchiveLibrary>().Nearline.Single();
        // Two runs of two streams: four folders, so four volumes, three files each.
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 3, EventsPerFile: 100));
        var raw = runs.SelectMany(r => r.Files!).ToList();
        var volumes = raw.Select(f => archive.Locate(f.Name!)!.Volume).Distinct(StringComparer.Ordinal).ToList();
        Assert.Equal(4, volumes.Count);
        await LeaveOnTapeOnlyAsync(archive, raw);
        server.UnloadDrive();
        var mountsBefore = server.ReadMounts.Count;

        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(raw.Count, Patience);

        var audit = await pipeline.AuditAsync(runs);
        Assert.True(audit.Complete, $"lost {audit.Events!.EventsLost}, duplicated {audit.Events!.EventsDuplicated}, failed {audit.FailedRawFiles}");
        // One mount per volume and recall request: each request is asked for volume by volume, and the robot reads each
        // volume of it once. The twelve files come in one request unless registering them outlasted the stager's batch
        // window (a clean-clone run on a busy machine once saw two); each file's history says how many files its request had.
        var mounts = server.ReadMounts.Skip(mountsBefore).ToList();
        var requested = (await pipeline.AllFilesAsync())
            .Select(f => f.History.Select(h => AskedWith().Match(h.Detail ?? "")).FirstOrDefault(m => m.Success))
            .Select(m => m is null ? 0 : int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture))
            .ToList();
        Assert.All(requested, n => Assert.InRange(n, 1, raw.Count));
        var requests = requested.GroupBy(n => n).Sum(g => g.Count() / g.Key);
        Assert.Equal(volumes.Count, mounts.Distinct(StringComparer.Ordinal).Count());
        if (requests == 1)
        {
            Assert.Equal(volumes.Count, mounts.Count);
        }
        else
        {
            Assert.InRange(mounts.Count, volumes.Count, volumes.Count * requests);
        }
        Assert.Equal(raw.Count, archive.RecallsCompleted);

        var files = await pipeline.AllFilesAsync();
        Assert.All(files, f =>
        {
            Assert.Equal(FileStates.Archived, f.CurrentState);
            // The waits are in each file's history, in order: recalled before staged, migrating before archived.
            var recalling = f.History.FindIndex(h => h.Detail?.StartsWith("recalling from tape", StringComparison.Ordinal) == true);
            var staged = f.History.FindIndex(h => h.State == FileStates.Staged);
            var migrating = f.History.FindLastIndex(h => h.Detail?.StartsWith("migrating: merged file", StringComparison.Ordinal) == true);
            var archived = f.History.FindIndex(h => h.State == FileStates.Archived);
            Assert.True(recalling >= 0 && recalling < staged, $"{f.LogicalName}: {string.Join(" | ", f.History.Select(h => $"{h.State}: {h.Detail}"))}");
            // A merged file already on tape when the archiver first looks (its write retried after the endpoint migrated
            // it, on a busy machine) had no wait to show; one that waited shows it before the file is archived.
            Assert.True(migrating < archived, $"{f.LogicalName}: {string.Join(" | ", f.History.Select(h => $"{h.State}: {h.Detail}"))}");
        });
        var merged = await pipeline.Services.GetRequiredService<ICatalog>().ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None);
        Assert.NotEmpty(merged);
        foreach (var entry in merged)
        {
            // On tape as the endpoint reports it, and the robot's copy holds the catalogued bytes.
            Assert.True((await archive.MigrationOfAsync(entry.Name, entry.Size, entry.Adler32, CancellationToken.None)).OnTape, entry.Name);
            var onTape = Path.Combine(server.LibraryPath, "volumes", "tape", top, "archive", entry.Name);
            Assert.Equal(entry.Adler32, Adler32Checksum.Format(Adler32Checksum.Of(await File.ReadAllBytesAsync(onTape))));
        }
    }

    [SkippableFact]
    public async Task Should_keep_a_merged_file_unarchived_and_alert_while_its_migration_does_not_come_then_finish_when_it_does()
    {
        server.Require();
        var top = $"pipeline-{Guid.NewGuid():N}";
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: Settings(top, alertSeconds: 2));
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 100));
        server.RefuseMigrations(true);
        try
        {
            await pipeline.IngestAsync(runs);
            var health = pipeline.Services.GetRequiredService<IHealthStore>();
            var alerts = await Eventually.Until(() => health.ListAlertsAsync(true, 100, CancellationToken.None),
                all => all.Any(a => a.Kind == "migration-overdue"), Patience, "a migration-overdue alert");
            var alert = alerts.First(a => a.Kind == "migration-overdue");

            // Written and catalogued on the endpoint's disk, but not archived: the files wait, the output copy stays.
            var mergedName = alert.Key["migration-overdue:".Length..];
            var record = await pipeline.Services.GetRequiredService<IMergeStore>().GetMergedFileAsync(mergedName, CancellationToken.None);
            Assert.False(record!.Archived);
            Assert.True(await pipeline.Areas.Output.ExistsAsync(mergedName, CancellationToken.None));
            Assert.True(await pipeline.Areas.Archive.ExistsAsync(Pipeline.Archiver.ArchiveMergedFileConsumer.ArchiveName(mergedName), CancellationToken.None));
            var files = await pipeline.AllFilesAsync();
            Assert.DoesNotContain(files, f => f.CurrentState == FileStates.Archived && f.Outputs.Any(o => o.MergedName == mergedName));
            // Each of its raw files says in its history what it waits for (the wait is told before the file is watched).
            await Eventually.Until(pipeline.AllFilesAsync,
                all => all.Where(f => f.Outputs.Any(o => o.MergedName == mergedName)).ToList() is { Count: > 0 } waiting
                    && waiting.All(f => f.History.Any(h => h.Detail?.StartsWith($"migrating: merged file {mergedName}", StringComparison.Ordinal) == true)),
                Patience, $"the raw files of {mergedName} waiting for its migration",
                all => string.Join("; ", all.Select(f => $"{f.LogicalName}: {f.History.LastOrDefault()?.Detail}")));
        }
        finally
        {
            server.RefuseMigrations(false);
        }

        // The robot takes the file at the residency manager's next try: then it is archived and the alert resolved.
        await pipeline.WaitForFinalAsync(runs.Sum(r => r.Files!.Count), Patience);
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal(FileStates.Archived, f.CurrentState));
        // The archiver's resolution reaches the monitor by message.
        await Eventually.Until(() => pipeline.Services.GetRequiredService<IHealthStore>().ListAlertsAsync(true, 100, CancellationToken.None),
            active => active.All(a => a.Kind != "migration-overdue"), Patience, "the migration-overdue alert resolved");
    }

    [SkippableFact]
    public async Task Should_complete_a_recall_across_a_restart_of_the_server()
    {
        server.Require();
        var top = $"recall-{Guid.NewGuid():N}";
        var area = new XrootdArea("archive", new Uri(server.TapeUri, top), new XrootdClient(TimeSpan.FromSeconds(60), connectSeconds: 2, requestSeconds: 10));
        var archive = new NearlineArchive(area, new NearlineOptions { PollSeconds = 0.2, RecallFloorSeconds = 120, RecallRepeatSeconds = 3 }, TimeProvider.System);
        var bytes = new byte[300_000];
        new Random(7).NextBytes(bytes);
        var adler = Adler32Checksum.Format(Adler32Checksum.Of(bytes));
        await area.WriteFromAsync("vol/file.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None);
        await LeaveOnTapeOnlyAsync(archive, [new RawFileRecord { Name = "vol/file.raw", Size = bytes.Length, Adler32 = adler }]);

        // A slow robot: the server is killed while the recall is under way, and started again.
        server.SetMountSeconds(2);
        try
        {
            var recall = Assert.Single(await archive.RecallAsync(["vol/file.raw"], CancellationToken.None));
            var waiting = archive.WaitOnlineAsync(recall, CancellationToken.None);
            await Eventually.Until(() => Task.FromResult(File.Exists(Path.Combine(server.LibraryPath, "calls"))
                    && File.ReadLines(Path.Combine(server.LibraryPath, "calls")).Any(l => l.StartsWith($"recall /tape/{top}/vol/file.raw", StringComparison.Ordinal))),
                started => started, Patience, "the robot's recall to start",
                _ => string.Join(" | ", File.Exists(Path.Combine(server.LibraryPath, "calls")) ? File.ReadLines(Path.Combine(server.LibraryPath, "calls")).TakeLast(5) : []));
            await server.KillAsync();
            await server.StartAgainAsync();
            await waiting;
        }
        finally
        {
            server.SetMountSeconds(0.05);
        }

        using var copy = new TempDirectory();
        var folder = new LocalArea("cache", new Uri(Path.Combine(copy.Path, "cache")));
        var (size, read) = await archive.ReadIntoAsync("vol/file.raw", folder, "file.raw", CancellationToken.None);
        Assert.Equal((bytes.Length, adler), (size, Adler32Checksum.Format(read)));
    }

    [SkippableFact]
    public async Task Should_not_take_a_tape_copy_of_other_bytes_for_the_file()
    {
        server.Require();
        var top = $"mismatch-{Guid.NewGuid():N}";
        var area = new XrootdArea("archive", new Uri(server.TapeUri, top), new XrootdClient(TimeSpan.FromSeconds(60)));
        var archive = new NearlineArchive(area, new NearlineOptions { PollSeconds = 0.2 }, TimeProvider.System);
        var bytes = new byte[50_000];
        new Random(3).NextBytes(bytes);
        var adler = Adler32Checksum.Format(Adler32Checksum.Of(bytes));
        await area.WriteFromAsync("vol/file.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None);
        await Eventually.Until(() => archive.MigrationOfAsync("vol/file.raw", bytes.Length, adler, CancellationToken.None), m => m.OnTape, Patience, "the tape copy");

        // Asked with another checksum (the catalog's, say, of a file that changed since), the tape copy does not count.
        var other = await archive.MigrationOfAsync("vol/file.raw", bytes.Length, "00000001", CancellationToken.None);
        Assert.False(other.OnTape);
        Assert.Contains("adler32", other.Problem, StringComparison.Ordinal);
    }

    /// <summary>Waits for the files' tape copies, then drops their disk copies: reading them needs a recall.</summary>
    private static async Task LeaveOnTapeOnlyAsync(NearlineArchive archive, IReadOnlyList<RawFileRecord> files)
    {
        foreach (var file in files)
        {
            await Eventually.Until(() => archive.MigrationOfAsync(file.Name!, file.Size, file.Adler32!, CancellationToken.None),
                m => m.OnTape, Patience, $"the tape copy of {file.Name}");
        }
        await ((INearlineArea)archive.Area).EvictAsync([.. files.Select(f => f.Name!)], CancellationToken.None);
        foreach (var file in files)
        {
            await Eventually.Until(() => ((INearlineArea)archive.Area).ResidencyAsync(file.Name!, CancellationToken.None),
                r => r is { Online: false }, Patience, $"{file.Name} evicted");
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^recalling from tape.*: asked with (\d+) files")]
    private static partial System.Text.RegularExpressions.Regex AskedWith();
}
