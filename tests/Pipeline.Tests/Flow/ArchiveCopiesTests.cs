using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

public sealed class When_a_dataset_asks_for_two_archive_copies
{
    [Fact]
    public async Task Should_catalog_a_merged_file_as_archived_only_with_a_verified_copy_in_each_area()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Archives:archive:Kind"] = "Tape",
            ["Pipeline:Archives:vault:Kind"] = "Disk",
            ["Pipeline:Flow:Datasets:muon:Copies:0"] = "archive",
            ["Pipeline:Flow:Datasets:muon:Copies:1"] = "vault",
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);
        Assert.True((await pipeline.AuditAsync(runs)).Complete);

        var merged = await pipeline.Services.GetRequiredService<ICatalog>().ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None);
        var vault = pipeline.Areas["vault"];
        foreach (var file in merged.Where(m => m.Dataset == "muon").GroupBy(m => m.Name))
        {
            Assert.Equal(["archive", "vault"], file.Select(e => e.Area).Order(StringComparer.Ordinal));
            var (size, adler) = await vault.ChecksumAsync(file.Key, CancellationToken.None);
            Assert.Equal((file.First().Size, file.First().Adler32), (size, Pipeline.Infrastructure.Checksums.Adler32Checksum.Format(adler)));
        }
        Assert.Contains(merged, m => m.Dataset == "muon");
        Assert.All(merged.Where(m => m.Dataset != "muon"), m => Assert.Equal(StorageOptions.Archive, m.Area));
        Assert.Empty(Directory.EnumerateFiles(pipeline.Areas.Output.RootPath, "*", SearchOption.AllDirectories));
    }
}

public sealed class When_the_ledger_holds_a_file_that_left_its_area : IDisposable
{
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public async Task Should_drop_only_old_reservations_whose_file_is_gone()
    {
        using var store = StoreBackend.Sqlite(Path.Combine(_folder.Path, "pipeline.db"));
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), _folder.Path);
        var old = DateTimeOffset.UtcNow.AddHours(-2);
        var limits = new AreaLimits(1_000_000, 900_000, 700_000);
        await areas.Cache.WriteAsync("present.raw", (s, ct) => s.WriteAsync(new byte[10], ct).AsTask(), CancellationToken.None);
        await store.Flow.TryReserveAsync("cache", "present.raw", 10, limits, old, CancellationToken.None);
        await store.Flow.TryReserveAsync("cache", "gone.raw", 20, limits, old, CancellationToken.None);
        await store.Flow.TryReserveAsync("cache", "just-reserved.raw", 30, limits, DateTimeOffset.UtcNow, CancellationToken.None);
        var sweeper = new AreaLedgerSweeper(store.Flow, areas, Options.Create(new FlowOptions { StaleReservationSeconds = 3600 }), TestSingletons.Over(store),
            TimeProvider.System, NullLogger<AreaLedgerSweeper>.Instance);

        Assert.Equal(1, await sweeper.SweepAsync(CancellationToken.None));

        var cache = Assert.Single(await store.Flow.ListAreaUsageAsync(CancellationToken.None));
        Assert.Equal((40L, 2L), (cache.Bytes, cache.Files));
        Assert.Equal(0, await sweeper.SweepAsync(CancellationToken.None));
    }
}
