using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pipeline.Collector;
using Pipeline.Infrastructure.Storage;
using Pipeline.Orchestrator;
using Pipeline.Production.Flow;
using Pipeline.Production.Jobs;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

public sealed class When_killed_jobs_leave_folders_in_scratch
{
    /// <summary>A job stopped between copying its outputs and reporting them, or an attempt a later one superseded, leaves outputs in the unmerged area too.</summary>
    [Fact]
    public async Task Should_clear_only_those_of_finished_files_untouched_for_a_while_and_keep_their_logs()
    {
        using var folder = new TempDirectory();
        using var store = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db"));
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), folder.Path);
        var archived = await FileAsync(store, "Archived");
        var reconstructing = await FileAsync(store, "Reconstructing");
        var oldJob = $"jobs/prompt/run000001/{archived:N}/attempt-1/0badc0de";
        var recentJob = $"jobs/prompt/run000001/{archived:N}/attempt-2/feedf00d";
        var liveJob = $"jobs/prompt/run000001/{reconstructing:N}/attempt-1/cafe0001";
        foreach (var job in new[] { oldJob, recentJob, liveJob })
        {
            await areas.Scratch.WriteAsync($"{job}/job.log", (s, ct) => s.WriteAsync("ran until killed\n"u8.ToArray(), ct).AsTask(), CancellationToken.None);
            await areas.Scratch.WriteAsync($"{job}/out/muon.evt", (s, ct) => s.WriteAsync(new byte[10], ct).AsTask(), CancellationToken.None);
            await areas.Unmerged.WriteAsync($"{job}/out/muon.evt", (s, ct) => s.WriteAsync(new byte[10], ct).AsTask(), CancellationToken.None);
            Assert.True(await store.Flow.TryReserveAsync(StorageOptions.Unmerged, $"{job}/out/muon.evt", 10, AreaLimits.Unbounded, DateTimeOffset.UtcNow, CancellationToken.None));
        }
        var now = DateTimeOffset.UtcNow;
        foreach (var job in new[] { oldJob, liveJob })
        {
            Age(areas.Scratch.PathOf(job), now.AddHours(-1));
            Age(((LocalArea)areas.Unmerged).PathOf(job), now.AddHours(-1));
        }
        // The files' state is asked of the orchestrator's answering consumer over a bus, as in the pipeline.
        var services = new ServiceCollection();
        services.AddSingleton(store.Sagas);
        services.AddMassTransitTestHarness(bus => bus.AddConsumer<FileStatesQueryConsumer>());
        await using var provider = services.BuildServiceProvider(validateScopes: true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var fileStates = new OrchestratorFileStates(provider.GetRequiredService<IClientFactory>());
        var time = new FakeTimeProvider(now);
        var gate = new AreaGate(store.Flow, new FlowControl(Options.Create(new FlowOptions())), areas, time, NullLogger<AreaGate>.Instance);
        var settings = Options.Create(new CollectorOptions { LeftoverAfterSeconds = 600 });
        var folders = new LeftoverJobFolderSweeper(areas, fileStates, settings, time, NullLogger<LeftoverJobFolderSweeper>.Instance);
        var outputs = new LeftoverOutputSweeper(areas, fileStates, gate, settings, time, NullLogger<LeftoverOutputSweeper>.Instance);

        // The old job's folder in scratch (by the worker's host), and its output in the unmerged area with its room there.
        Assert.Equal(1, await folders.SweepAsync(CancellationToken.None));
        Assert.Equal(1, await outputs.SweepAsync(CancellationToken.None));

        Assert.False(Directory.Exists(areas.Scratch.PathOf(oldJob)));
        Assert.Equal("ran until killed\n", await File.ReadAllTextAsync(areas.Logs.PathOf($"prompt/run000001/physics/{archived:N}/attempt-1/leftover-0badc0de/job.log")));
        // Still being written to, or its file still at work: left alone.
        Assert.True(areas.Scratch.Exists($"{recentJob}/out/muon.evt"));
        Assert.True(areas.Scratch.Exists($"{liveJob}/out/muon.evt"));
        Assert.False(await areas.Unmerged.ExistsAsync($"{oldJob}/out/muon.evt", CancellationToken.None));
        Assert.True(await areas.Unmerged.ExistsAsync($"{recentJob}/out/muon.evt", CancellationToken.None));
        Assert.True(await areas.Unmerged.ExistsAsync($"{liveJob}/out/muon.evt", CancellationToken.None));
        Assert.Equal(new[] { $"{liveJob}/out/muon.evt", $"{recentJob}/out/muon.evt" }.Order(StringComparer.Ordinal),
            (await store.Flow.ListReservationsAsync(StorageOptions.Unmerged, now.AddHours(1), 10, CancellationToken.None)).Select(r => r.Name).Order(StringComparer.Ordinal));
        Assert.Equal(0, await folders.SweepAsync(CancellationToken.None));
        Assert.Equal(0, await outputs.SweepAsync(CancellationToken.None));
    }

    internal static async Task<Guid> FileAsync(StoreBackend store, string state)
    {
        var id = Guid.NewGuid();
        await store.Sagas.InsertAsync(new FileState
        {
            CorrelationId = id, CurrentState = state, Campaign = "prompt", Run = 1, Stream = "physics", LogicalName = $"raw/{id:N}.raw", UpdatedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
        return id;
    }

    private static void Age(string directory, DateTimeOffset at)
    {
        foreach (var path in Directory.EnumerateFileSystemEntries(directory, "*", SearchOption.AllDirectories).Append(directory))
        {
            if (File.Exists(path))
            {
                File.SetLastWriteTimeUtc(path, at.UtcDateTime);
            }
            else
            {
                Directory.SetLastWriteTimeUtc(path, at.UtcDateTime);
            }
        }
    }
}

/// <summary>
/// The unmerged area on a storage server, which keeps a folder after its last file goes: the sweep reads one level per
/// run, looks into the folders of final files only, and removes what it emptied.
/// </summary>
public sealed class When_a_storage_server_holds_the_outputs_of_finished_jobs(XrootdServer server) : IClassFixture<XrootdServer>
{
    [SkippableFact]
    public async Task Should_remove_the_leftovers_and_the_emptied_folders_of_final_files_and_leave_files_at_work_alone()
    {
        server.Require();
        using var folder = new TempDirectory();
        using var store = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db"));
        var unmerged = $"unmerged-{Guid.NewGuid():N}";
        var areas = StorageAreas.FromConfiguration(
            new Dictionary<string, string?> { [StorageOptions.Unmerged] = $"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{unmerged}" }, folder.Path);
        var merged = await When_killed_jobs_leave_folders_in_scratch.FileAsync(store, "Archived");
        var superseded = await When_killed_jobs_leave_folders_in_scratch.FileAsync(store, "Archived");
        var working = await When_killed_jobs_leave_folders_in_scratch.FileAsync(store, "Reconstructing");
        // Every output of the merged file went into its merged files (the folders stay); the superseded attempt's did not.
        var mergedOutput = $"jobs/prompt/run000001/{merged:N}/attempt-1/0badc0de/out/muon.evt";
        var leftover = $"jobs/prompt/run000001/{superseded:N}/attempt-1/feedf00d/out/muon.evt";
        var atWork = $"jobs/prompt/run000001/{working:N}/attempt-1/cafe0001/out/muon.evt";
        foreach (var name in new[] { mergedOutput, leftover, atWork })
        {
            await areas.Unmerged.WriteAsync(name, (s, ct) => s.WriteAsync(new byte[10], ct).AsTask(), CancellationToken.None);
        }
        Assert.True(await areas.Unmerged.DeleteAsync(mergedOutput, CancellationToken.None));
        Assert.True(Directory.Exists(Path.Combine(server.DataPath, unmerged, $"jobs/prompt/run000001/{merged:N}/attempt-1/0badc0de/out")));

        var services = new ServiceCollection();
        services.AddSingleton(store.Sagas);
        services.AddMassTransitTestHarness(bus => bus.AddConsumer<FileStatesQueryConsumer>());
        await using var provider = services.BuildServiceProvider(validateScopes: true);
        await provider.GetRequiredService<ITestHarness>().Start();
        // An hour on: everything is untouched for long enough.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow.AddHours(1));
        var gate = new AreaGate(store.Flow, new FlowControl(Options.Create(new FlowOptions())), areas, time, NullLogger<AreaGate>.Instance);
        var sweeper = new LeftoverOutputSweeper(areas, new OrchestratorFileStates(provider.GetRequiredService<IClientFactory>()), gate,
            Options.Create(new CollectorOptions { LeftoverAfterSeconds = 600 }), time, NullLogger<LeftoverOutputSweeper>.Instance);

        Assert.Equal(1, await sweeper.SweepAsync(CancellationToken.None));

        var run = Path.Combine(server.DataPath, unmerged, "jobs/prompt/run000001");
        Assert.Equal([$"{working:N}"], Directory.EnumerateDirectories(run).Select(Path.GetFileName));
        Assert.True(await areas.Unmerged.ExistsAsync(atWork, CancellationToken.None));
        Assert.Equal(0, await sweeper.SweepAsync(CancellationToken.None));

        // Once the last file of the run is done and its outputs merged, the run's folder goes too (on the pass after).
        Assert.True(await areas.Unmerged.DeleteAsync(atWork, CancellationToken.None));
        var done = (await store.Sagas.LoadAsync(working, CancellationToken.None))!;
        done.CurrentState = "Archived";
        await store.Sagas.UpdateAsync(done, done.Version, CancellationToken.None);
        await sweeper.SweepAsync(CancellationToken.None);
        await sweeper.SweepAsync(CancellationToken.None);
        Assert.False(Directory.Exists(run));
    }
}

