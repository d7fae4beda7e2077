using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Archiver;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Flow;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.Reconstruction.Batch;
using Pipeline.SampleExperiment;

namespace Pipeline.Host;

/// <summary>
/// `make demo`: generate sample raw data, push it through every stage in one process, audit the
/// archive event by event, and print the result as one JSON line (the last line on stdout). With
/// REPROCESS=1 a reprocessing campaign then takes the same raw files again with a second release.
/// Exits 0 only if every raw file completed in every campaign with no event lost or doubled and every checksum verified.
/// </summary>
public static class DemoCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var configuration = new ConfigurationBuilder().AddEnvironmentVariables().AddCommandLine(args).Build();
        var runs = SampleRuns.Setting(configuration, "RUNS", 2);
        var files = SampleRuns.Setting(configuration, "FILES", 4);
        var events = SampleRuns.Setting(configuration, "EVENTS", 500);
        var reprocess = SampleRuns.Setting(configuration, "REPROCESS", 0) != 0;
        var timeout = TimeSpan.FromSeconds(SampleRuns.Setting(configuration, "DEMO_TIMEOUT", 900));
        var dataDirectory = configuration["DEMO_DIR"] ?? Path.Combine("data", $"demo-{DateTime.UtcNow:yyyyMMdd-HHmmss}");

        var settings = new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:0",
            ["Pipeline:DataDirectory"] = dataDirectory,
            ["Pipeline:Transport"] = "InMemory",
            ["Pipeline:Campaign:MergeTargetBytes"] = (4L << 20).ToString(CultureInfo.InvariantCulture),
            ["Pipeline:Merger:FlushIdleSeconds"] = "1",
            ["Pipeline:Merger:PollSeconds"] = "0.2",
            // The cache holds a few raw files at most: the demo shows back-pressure as it happens, measured by the running system.
            ["Pipeline:Flow:Areas:cache:QuotaBytes"] = SampleRuns.Setting(configuration, "CACHE_QUOTA", 1 << 20).ToString(CultureInfo.InvariantCulture),
            ["Pipeline:Flow:Areas:output:QuotaBytes"] = (64L << 20).ToString(CultureInfo.InvariantCulture),
        };
        // A folder archive is a simulated tape library, so the demo shows tape mounts too; an archive on a storage
        // server (STORAGE=remote) is that server's.
        var archiveUrl = configuration[$"{StorageOptions.Section}:{StorageOptions.Archive}"];
        if (archiveUrl is null || !Uri.TryCreate(archiveUrl, UriKind.Absolute, out var archiveLocation) || archiveLocation.IsFile)
        {
            settings["Pipeline:Archives:archive:Kind"] = "Tape";
            settings["Pipeline:Archives:archive:Tape:Drives"] = "2";
            settings["Pipeline:Archives:archive:Tape:MountSeconds"] = "0.2";
            settings["Pipeline:Archives:archive:Tape:PositionSeconds"] = "0.02";
            settings["Pipeline:Archives:archive:Tape:MegabytesPerSecond"] = "100";
        }
        var app = PipelineApp.Build([.. args.Where(a => a.StartsWith("--", StringComparison.Ordinal))], settings);
        var stopwatch = Stopwatch.StartNew();
        await app.StartAsync();
        try
        {
            var areas = app.Services.GetRequiredService<StorageAreas>();
            var campaign = app.Services.GetRequiredService<IOptions<CampaignOptions>>().Value;
            var generated = await SampleGenerator.GenerateAsync((name, body, token) => areas.Archive.WriteAsync(name, body, token),
                new SampleSpec(Runs: runs, FilesPerStream: files, EventsPerFile: events));
            using var deadline = new CancellationTokenSource(timeout);
            var nearline = app.Services.GetRequiredService<ArchiveLibrary>().Nearline.FirstOrDefault(a => a.Name == StorageOptions.Archive);
            if (nearline is not null)
            {
                await LeaveOnTapeOnlyAsync(nearline, generated, deadline.Token);
            }
            var ingestion = app.Services.GetRequiredService<RunIngestion>();
            var bus = app.Services.GetRequiredService<IBus>();
            foreach (var run in generated)
            {
                await ingestion.IngestAsync(run, bus, CancellationToken.None);
            }
            var total = generated.Sum(r => r.Files!.Count);
            var sagas = app.Services.GetRequiredService<IFileSagaStore>();
            await WaitForFinalStatesAsync(sagas, total, deadline.Token);

            var catalog = app.Services.GetRequiredService<ICatalog>();
            // The same question answered twice, by the one audit the API and the command line run: from the catalog's
            // manifests alone, and from the bytes.
            var audit = app.Services.GetRequiredService<CampaignAudit>();
            var report = await audit.RunAsync(campaign.Name, readEvents: true, CancellationToken.None);
            var eventAudit = report.Events!;
            var campaigns = new List<object> { CampaignLine(campaign.Name, CampaignKinds.Prompt, campaign.Release.Version, report) };
            var complete = report.Complete;
            if (reprocess)
            {
                // The same raw files again, as a reprocessing campaign with a second release: its own sagas, its own outputs.
                var second = campaign.ToDefinition() with
                {
                    Name = $"{campaign.Name}-reprocessed",
                    Kind = CampaignKinds.Reprocessing,
                    Release = ReleaseSpec.From(campaign.Release) with { Version = campaign.Release.Version + "-reprocessing" },
                };
                await app.Services.GetRequiredService<CampaignService>().CreateAsync(second, "demo", CancellationToken.None);
                await WaitForFinalStatesAsync(sagas, 2 * total, deadline.Token);
                var reprocessed = await audit.RunAsync(second.Name!, readEvents: true, CancellationToken.None);
                campaigns.Add(CampaignLine(second.Name!, CampaignKinds.Reprocessing, second.Release!.Version!, reprocessed));
                complete &= reprocessed.Complete;
            }
            var flow = app.Services.GetRequiredService<FlowControl>();
            var cache = (await app.Services.GetRequiredService<IFlowStore>().ListAreaUsageAsync(CancellationToken.None))
                .FirstOrDefault(a => a.Area == StorageOptions.Cache);
            var tape = app.Services.GetRequiredService<ArchiveLibrary>().TapeLibraries.FirstOrDefault(t => t.Library == StorageOptions.Archive);
            var merged = await catalog.ListAsync(CatalogEntry.Merged, campaign.Name, CancellationToken.None);
            var serverChecksums = await ServerChecksumsAsync(areas, catalog);
            complete &= serverChecksums.Wrong == 0;
            var migrations = 0;
            foreach (var entry in merged.Where(e => nearline is not null && e.Area == nearline.Name))
            {
                migrations += (await nearline!.MigrationOfAsync(entry.Name, entry.Size, entry.Adler32, CancellationToken.None)).OnTape ? 1 : 0;
            }
            var batch = await BatchJobsAsync(app.Services, sagas);
            var summary = new
            {
                runs = generated.Count,
                rawFiles = report.RawFiles,
                archivedFiles = report.MergedFiles,
                completedFiles = report.ArchivedRawFiles,
                failedFiles = report.FailedRawFiles,
                eventsIn = eventAudit.EventsIn,
                eventsExpected = eventAudit.EventsExpected,
                eventsArchived = eventAudit.EventsArchived,
                eventsLost = eventAudit.EventsLost,
                eventsDuplicated = eventAudit.EventsDuplicated,
                checksumsVerified = eventAudit.ChecksumsVerified,
                moversLimit = flow.MoversLimit,
                maxMoversInUse = app.Services.GetRequiredService<Movers>().MaxInUse,
                cacheQuotaBytes = flow.QuotaOf(StorageOptions.Cache).QuotaBytes,
                cachePeakBytes = cache?.PeakBytes ?? 0,
                largestFileBytes = cache?.LargestFileBytes ?? 0,
                filesStaged = tape?.FilesRead ?? 0,
                tapeMounts = tape?.Mounts ?? 0,
                stageMounts = tape?.ReadMounts ?? 0,
                datasetsOutOfOrder = ArchiveOrder.DatasetsOutOfOrder(merged.Where(e => e.Area == StorageOptions.Archive)).Count,
                storage = new
                {
                    archive = areas.Archive.Location.AbsoluteUri,
                    cache = areas.Cache.Location.AbsoluteUri,
                    unmerged = areas.Unmerged.Location.AbsoluteUri,
                    output = areas.Output.Location.AbsoluteUri,
                    logs = areas.Logs.Location.AbsoluteUri,
                },
                serverChecksumsVerified = serverChecksums.Verified,
                serverChecksumsWrong = serverChecksums.Wrong,
                recalls = nearline?.RecallsCompleted ?? 0,
                migrations,
                store = app.Services.GetRequiredService<IOptions<PipelineOptions>>().Value.Store.ToString().ToLowerInvariant(),
                executor = app.Services.GetRequiredService<IOptions<ReconstructionOptions>>().Value.Executor.ToString().ToLowerInvariant(),
                batchJobs = batch?.Jobs,
                batchJobsPerFile = batch?.PerFile,
                campaigns,
                seconds = Math.Round(stopwatch.Elapsed.TotalSeconds, 2),
            };
            Console.Out.WriteLine(JsonSerializer.Serialize(summary));
            return complete ? 0 : 1;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync($"demo: files did not all finish within {timeout.TotalSeconds}s; state is kept in {dataDirectory}");
            return 1;
        }
        finally
        {
            await app.StopAsync();
        }
    }

    /// <summary>
    /// On a nearline archive the demo's raw files first go to tape and leave the endpoint's disk (as its purge would make
    /// room), so that staging them is a real recall: the demo waits for their tape copies, then evicts them.
    /// </summary>
    private static async Task LeaveOnTapeOnlyAsync(NearlineArchive archive, IReadOnlyList<RunRecorded> runs, CancellationToken cancellationToken)
    {
        var files = runs.SelectMany(r => r.Files!).ToList();
        var waiting = files.ToList();
        while (waiting.Count > 0)
        {
            var still = new List<RawFileRecord>();
            foreach (var file in waiting)
            {
                if (!(await archive.MigrationOfAsync(file.Name!, file.Size, file.Adler32!, cancellationToken)).OnTape)
                {
                    still.Add(file);
                }
            }
            waiting = still;
            if (waiting.Count > 0)
            {
                await Task.Delay(TimeSpan.FromSeconds(archive.Options.PollSeconds), cancellationToken);
            }
        }
        await ((INearlineArea)archive.Area).EvictAsync([.. files.Select(f => f.Name!)], cancellationToken);
        await Console.Error.WriteLineAsync($"demo: {files.Count} raw files are on tape in {archive.Area.Location} and were evicted from its disk; staging recalls them");
    }

    /// <summary>
    /// With the Slurm executor: the jobs Slurm ran for this system (started, whatever their end), read from Slurm itself,
    /// and how many there were per file reconstructed (1.0 when nothing was run twice). Null with the local executor.
    /// </summary>
    private static async Task<(int Jobs, double PerFile)?> BatchJobsAsync(IServiceProvider services, IFileSagaStore sagas)
    {
        if (services.GetService<SlurmClient>() is not { } slurm)
        {
            return null;
        }
        var ran = (await slurm.ListAsync(CancellationToken.None)).Count(j => j.Started is not null);
        var files = (await sagas.CountByStateAsync(CancellationToken.None))
            .Where(c => c.State is FileStates.Reconstructed or FileStates.Merged or FileStates.Archived).Sum(c => c.Files);
        return (ran, files == 0 ? 0 : Math.Round((double)ran / files, 2));
    }

    /// <summary>
    /// Archived files on a storage server whose checksum the server itself reports and equals the catalog's, and those
    /// whose does not (or that it does not report): folder archives keep no checksum of their own and count in neither.
    /// </summary>
    private static async Task<(int Verified, int Wrong)> ServerChecksumsAsync(StorageAreas areas, ICatalog catalog)
    {
        var (verified, wrong) = (0, 0);
        foreach (var entry in await catalog.ListAsync(CatalogEntry.Merged, null, CancellationToken.None))
        {
            if (!areas.TryGet(entry.Area, out var area) || area.IsLocal)
            {
                continue;
            }
            var stored = await area.StatAsync(entry.Name, CancellationToken.None);
            if (stored?.StoredAdler32 is not { } reported || stored.Size != entry.Size || !Adler32Checksum.Same(reported, entry.Adler32))
            {
                await Console.Error.WriteLineAsync(
                    $"demo: {entry.Name} in {entry.Area}: the server reports {stored?.Size} bytes adler32 {stored?.StoredAdler32}, the catalog {entry.Size} bytes adler32 {entry.Adler32}");
                wrong++;
                continue;
            }
            verified++;
        }
        return (verified, wrong);
    }

    /// <summary>One campaign's line in the summary: its raw files, how many completed (all outputs archived) or failed, and events lost.</summary>
    private static object CampaignLine(string name, string kind, string release, CampaignAuditReport report) => new
    {
        name,
        kind,
        release,
        rawFiles = report.RawFiles,
        archivedFiles = report.ArchivedRawFiles,
        failedFiles = report.FailedRawFiles,
        mergedFiles = report.MergedFiles,
        eventsLost = report.Events?.EventsLost,
        eventsDuplicated = report.Events?.EventsDuplicated,
        catalogAuditComplete = report.CatalogComplete,
        manifestsVerified = report.ManifestsVerified,
    };

    /// <summary>Waits until every registered file is archived, failed or cancelled.</summary>
    public static async Task WaitForFinalStatesAsync(IFileSagaStore sagas, int total, CancellationToken cancellationToken)
    {
        while (true)
        {
            var counts = await sagas.CountByStateAsync(cancellationToken);
            var final = counts.Where(c => FileStates.Final.Contains(c.State)).Sum(c => c.Files);
            if (final >= total)
            {
                return;
            }
            await Task.Delay(200, cancellationToken);
        }
    }
}
