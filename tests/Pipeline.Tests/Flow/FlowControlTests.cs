using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Control;
using Pipeline.Production.Flow;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

/// <summary>Back-pressure end to end on a real broker: bounded areas, few movers, a slow tape, and nothing lost or out of order.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class When_files_flow_through_small_buffers_to_a_slow_tape(RabbitMqBroker broker)
{
    private const long CacheQuota = 60_000;
    private const long OutputQuota = 150_000;
    private const int Movers = 2;

    [Fact]
    public async Task Should_keep_every_area_within_its_quota_and_the_movers_within_their_limit_and_lose_nothing()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), new Dictionary<string, string?>
        {
            ["Pipeline:Campaign:MergeTargetBytes"] = "40000",
            ["Pipeline:Flow:Movers"] = Movers.ToString(CultureInfo.InvariantCulture),
            ["Pipeline:Flow:Areas:cache:QuotaBytes"] = CacheQuota.ToString(CultureInfo.InvariantCulture),
            ["Pipeline:Flow:Areas:output:QuotaBytes"] = OutputQuota.ToString(CultureInfo.InvariantCulture),
            // The unmerged area is bounded too, but never full here: a full one would let strict ordering give way.
            ["Pipeline:Flow:Areas:unmerged:QuotaBytes"] = "50000000",
            ["Pipeline:Flow:AdmissionPollSeconds"] = "0.05",
            ["Pipeline:Archiver:Writers"] = "4",
            ["Pipeline:Archives:archive:Kind"] = "Tape",
            ["Pipeline:Archives:archive:Tape:Drives"] = "2",
            ["Pipeline:Archives:archive:Tape:MountSeconds"] = "0.05",
            ["Pipeline:Archives:archive:Tape:PositionSeconds"] = "0.005",
            ["Pipeline:Archives:archive:Tape:MegabytesPerSecond"] = "1",
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 10, FilesPerStream: 10, EventsPerFile: 20));
        var files = runs.Sum(r => r.Files!.Count);
        Assert.Equal(200, files);
        var largestRaw = runs.SelectMany(r => r.Files!).Max(f => f.Size);

        using var sampling = new CancellationTokenSource();
        var sampler = SampleAsync(pipeline, sampling.Token);
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(files, TimeSpan.FromMinutes(8));
        await sampling.CancelAsync();
        var samples = await sampler;

        var audit = await pipeline.AuditAsync(runs);
        Assert.True(audit.Complete, $"not complete: {audit.FailedRawFiles} failed, {audit.ArchivedRawFiles} of {files} archived");
        Assert.All(audit.Events!.Datasets.Values, d => Assert.Equal((0L, 0L), (d.Lost, d.Duplicated)));

        var catalog = pipeline.Services.GetRequiredService<ICatalog>();
        var merged = await catalog.ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None);
        var largestMerged = merged.Max(m => m.Size);
        Assert.True(samples.Count > 10, $"only {samples.Count} samples were taken");
        Assert.All(samples, s => Assert.True(s.CacheBytes <= CacheQuota + largestRaw, $"cache held {s.CacheBytes} bytes (quota {CacheQuota}, largest file {largestRaw})"));
        Assert.All(samples, s => Assert.True(s.OutputBytes <= OutputQuota + largestMerged, $"output held {s.OutputBytes} bytes (quota {OutputQuota}, largest file {largestMerged})"));
        Assert.All(samples, s => Assert.True(s.Movers <= Movers, $"{s.Movers} movers in use (limit {Movers})"));
        // The quotas did hold something back: the cache filled up to its high-water mark at least once.
        // The stager lets go of the last staged copies asynchronously, possibly after their files are final: wait for it.
        var flowStore = pipeline.Services.GetRequiredService<IFlowStore>();
        var cache = await Eventually.Until(
            async () => (await flowStore.ListAreaUsageAsync(CancellationToken.None)).Single(a => a.Area == StorageOptions.Cache),
            usage => usage.Bytes == 0 && usage.Files == 0, TimeSpan.FromMinutes(1), "the cache ledger to be empty");
        Assert.True(cache.PeakBytes >= CacheQuota * 0.9, $"the cache never filled (peak {cache.PeakBytes})");
        Assert.Equal((0L, 0L), (cache.Bytes, cache.Files));
        Assert.Empty(ArchiveOrder.DatasetsOutOfOrder(merged.Where(m => m.Area == StorageOptions.Archive)));
    }

    private sealed record Sample(long CacheBytes, long OutputBytes, int Movers);

    /// <summary>Measures the areas on disk (every file, temporary ones included) and the movers held, until cancelled.</summary>
    private static async Task<List<Sample>> SampleAsync(PipelineUnderTest pipeline, CancellationToken cancellationToken)
    {
        var samples = new List<Sample>();
        var store = pipeline.Services.GetRequiredService<IFlowStore>();
        while (!cancellationToken.IsCancellationRequested)
        {
            samples.Add(new Sample(BytesIn(pipeline.Areas.Cache), BytesIn(pipeline.Areas.Output),
                (await store.ListMoversAsync(DateTimeOffset.UtcNow, CancellationToken.None)).Count));
            try
            {
                await Task.Delay(20, cancellationToken);
            }
            catch (OperationCanceledException)
            {
            }
        }
        return samples;
    }

    private static long BytesIn(StorageArea area)
    {
        long bytes = 0;
        foreach (var file in Directory.EnumerateFiles(area.RootPath, "*", SearchOption.AllDirectories))
        {
            try
            {
                bytes += new FileInfo(file).Length;
            }
            catch (FileNotFoundException)
            {
                // Removed while being measured.
            }
        }
        return bytes;
    }
}

/// <summary>Stage-in from a tape library: requests for files on the same volume are read together, in position order.</summary>
public sealed class When_files_are_staged_from_a_tape_library
{
    [Fact]
    public async Task Should_mount_each_volume_once_for_a_batch_of_requests()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Archives:archive:Kind"] = "Tape",
            ["Pipeline:Archives:archive:Tape:Drives"] = "1",
            ["Pipeline:Archives:archive:Tape:MountSeconds"] = "0.01",
            ["Pipeline:Stager:BatchSize"] = "100",
            ["Pipeline:Stager:BatchWindowMilliseconds"] = "5000",
        });
        // 3 runs × 2 streams: 6 volumes (a folder per run and stream), 4 files on each, announced at once.
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 3, FilesPerStream: 4, EventsPerFile: 10));
        var files = runs.Sum(r => r.Files!.Count);
        var archive = pipeline.Services.GetRequiredService<ArchiveLibrary>().Primary;
        var volumes = runs.SelectMany(r => r.Files!).Select(f => archive.Locate(f.Name!)!.Volume).Distinct().Count();
        Assert.Equal(6, volumes);
        // Merged files are written to the same library later; the merger waits until every file is staged, so
        // that no write takes the one drive between two reads of a batch.
        var control = pipeline.Services.GetRequiredService<IControlStore>();
        var pause = pipeline.Services.GetRequiredService<PauseState>();
        await control.PauseAsync("merger", "test", DateTimeOffset.UtcNow, CancellationToken.None);
        await Eventually.Until(() => Task.FromResult(pause.IsPaused("merger")), paused => paused, TimeSpan.FromSeconds(30), "the merger paused");

        await pipeline.IngestAsync(runs);
        await Eventually.Until(async () => (await pipeline.Sagas.CountByStateAsync(CancellationToken.None)).Where(c => c.State == "Reconstructed").Sum(c => c.Files),
            reconstructed => reconstructed == files, TimeSpan.FromMinutes(3), "every file reconstructed");
        await control.ResumeAsync("merger", CancellationToken.None);
        await pipeline.WaitForFinalAsync(files);

        var tape = pipeline.Services.GetRequiredService<ArchiveLibrary>().TapeLibraries.Single();
        Assert.Equal(files, tape.FilesRead);
        Assert.Equal(volumes, tape.ReadMounts);
    }
}
