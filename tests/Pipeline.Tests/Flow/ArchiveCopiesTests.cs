using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.Jobs;
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
        var sweeper = new AreaLedgerSweeper(store.Flow, areas, new KnownFiles(), Options.Create(new FlowOptions { StaleReservationSeconds = 3600 }), TestSingletons.Over(store),
            TimeProvider.System, NullLogger<AreaLedgerSweeper>.Instance);

        Assert.Equal(1, await sweeper.SweepAsync(CancellationToken.None));

        var cache = Assert.Single(await store.Flow.ListAreaUsageAsync(CancellationToken.None));
        Assert.Equal((40L, 2L), (cache.Bytes, cache.Files));
        Assert.Equal(0, await sweeper.SweepAsync(CancellationToken.None));
    }

    /// <summary>
    /// Scratch is each worker host's own disk: the sweeper (on the monitor's host) cannot see it, and drops an attempt
    /// folder's room once the attempt is over by the file's state, whatever its own scratch holds.
    /// </summary>
    [Fact]
    public async Task Should_drop_scratch_reservations_of_attempts_that_are_over_and_keep_running_ones()
    {
        using var store = StoreBackend.Sqlite(Path.Combine(_folder.Path, "pipeline.db"));
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), _folder.Path);
        var old = DateTimeOffset.UtcNow.AddHours(-2);
        var (running, retried, archived, forgotten) = (Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid(), Guid.NewGuid());
        var files = new KnownFiles(
            new FileStatus(running, "prompt", 1, "physics", "Reconstructing", false, 1),
            new FileStatus(retried, "prompt", 1, "physics", "Reconstructing", false, 2),
            new FileStatus(archived, "prompt", 1, "physics", "Archived", true, 1));
        string[] over = [JobFolders.OfAttempt("prompt", 1, retried, 1), JobFolders.OfAttempt("prompt", 1, archived, 1), JobFolders.OfAttempt("prompt", 1, forgotten, 1)];
        string[] kept = [JobFolders.OfAttempt("prompt", 1, running, 1), JobFolders.OfAttempt("prompt", 1, retried, 2), "not-a-job-folder"];
        foreach (var name in over.Concat(kept))
        {
            Assert.True(await store.Flow.TryReserveAsync(StorageOptions.Scratch, name, 10, AreaLimits.Unbounded, old, CancellationToken.None));
        }
        // The running attempt's folder is not on this host's disk: it is on its worker's.
        Assert.False(areas.Scratch.Holds(kept[0]));
        var sweeper = new AreaLedgerSweeper(store.Flow, areas, files, Options.Create(new FlowOptions { StaleReservationSeconds = 3600 }), TestSingletons.Over(store),
            TimeProvider.System, NullLogger<AreaLedgerSweeper>.Instance);

        Assert.Equal(3, await sweeper.SweepAsync(CancellationToken.None));

        Assert.Equal(kept.Order(StringComparer.Ordinal),
            (await store.Flow.ListReservationsAsync(StorageOptions.Scratch, DateTimeOffset.UtcNow, 10, CancellationToken.None)).Select(r => r.Name).Order(StringComparer.Ordinal));
        // Without an answer from the orchestrator nothing more is dropped.
        files.Answers = false;
        Assert.True(await store.Flow.TryReserveAsync(StorageOptions.Scratch, JobFolders.OfAttempt("prompt", 1, archived, 2), 10, AreaLimits.Unbounded, old, CancellationToken.None));
        Assert.Equal(0, await sweeper.SweepAsync(CancellationToken.None));
    }

    private sealed class KnownFiles(params FileStatus[] files) : IFileStates
    {
        public bool Answers { get; set; } = true;

        public Task<IReadOnlyList<FileStatus>> FindAsync(IReadOnlyList<Guid> fileIds, CancellationToken cancellationToken) => Answers
            ? Task.FromResult<IReadOnlyList<FileStatus>>([.. files.Where(f => fileIds.Contains(f.FileId))])
            : Task.FromException<IReadOnlyList<FileStatus>>(new TimeoutException("No answer to FileStatesQuery within 35 s; asked again later."));
    }
}
