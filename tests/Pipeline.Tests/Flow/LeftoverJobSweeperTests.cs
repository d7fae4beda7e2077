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

    private static async Task<Guid> FileAsync(StoreBackend store, string state)
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
