using Microsoft.Extensions.DependencyInjection;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

/// <summary>The cache on a disk of its own that fills up: work waits, nothing partial is promoted, and it resumes when room returns.</summary>
public sealed class When_the_disk_under_the_cache_fills
{
    private static readonly SampleSpec Spec = new(Runs: 1, FilesPerStream: 2, EventsPerFile: 200, PayloadBytes: 1000);

    [SkippableFact]
    public async Task Should_hold_files_back_before_writing_while_the_disk_keeps_less_than_its_reserve_free()
    {
        using var disk = SmallDisk.Mount(8 << 20);
        Skip.If(disk.Unavailable is not null, disk.Unavailable);
        // Room for the files, but not for them and the reserve.
        await RunOnFullDiskAsync(disk, reserveBytes: 2 << 20, leaveFree: (2 << 20) + (100 << 10), waitingShowsAs: (pipeline, gate) =>
        {
            // Refused before anything was written: the disk holds the filler alone.
            Assert.Equal(["filler.bin"], Directory.EnumerateFiles(disk.Path, "*", SearchOption.AllDirectories).Select(Path.GetFileName));
        });
    }

    [SkippableFact]
    public async Task Should_drop_a_copy_that_ran_out_of_space_and_stage_it_again_once_room_returns()
    {
        using var disk = SmallDisk.Mount(8 << 20);
        Skip.If(disk.Unavailable is not null, disk.Unavailable);
        // No reserve: copies start, and run out of disk part way (each file is about 200 KB).
        await RunOnFullDiskAsync(disk, reserveBytes: 0, leaveFree: 100 << 10, waitingShowsAs: (_, _) => { });
    }

    private static async Task RunOnFullDiskAsync(SmallDisk disk, long reserveBytes, long leaveFree, Action<PipelineUnderTest, AreaGate> waitingShowsAs)
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            [$"{StorageOptions.Section}:{StorageOptions.Cache}"] = new Uri(disk.Path).AbsoluteUri,
            ["Pipeline:Flow:MinFreeBytes"] = reserveBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        var runs = await pipeline.GenerateAsync(Spec);
        Assert.All(runs[0].Files!, f => Assert.InRange(f.Size, 150 << 10, 400 << 10));
        var filler = disk.Fill(leaveFree);
        var gate = pipeline.Services.GetRequiredService<AreaGate>();

        await pipeline.IngestAsync(runs);
        // Work waits: the stager met the full disk, and no file failed or got past staging.
        var files = await Eventually.Until(async () => (gate.DiskFullWaits, await pipeline.AllFilesAsync()),
            seen => seen.DiskFullWaits > 0 && seen.Item2.Count == 4, TimeSpan.FromMinutes(2), "the stager waiting for disk space",
            seen => $"{seen.DiskFullWaits} waits; {string.Join(", ", seen.Item2.Select(f => $"{f.LogicalName}={f.CurrentState}"))}");
        Assert.All(files.Item2, f => Assert.Contains(f.CurrentState, new[] { "Registered", "Staging" }));
        waitingShowsAs(pipeline, gate);

        // Room returns: everything goes through, once, whole.
        File.Delete(filler);
        await pipeline.WaitForFinalAsync(4);
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal("Archived", f.CurrentState));
        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        Assert.Empty(Directory.EnumerateFiles(disk.Path, "*" + StorageArea.TemporaryMarker + "*", SearchOption.AllDirectories));
    }
}
