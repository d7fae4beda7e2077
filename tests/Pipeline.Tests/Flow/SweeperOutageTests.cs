using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Storage;
using Pipeline.Orchestrator;
using Pipeline.Production.Jobs;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

public sealed class When_the_orchestrators_store_is_down_while_the_leftover_sweeper_runs
{
    [Fact]
    public async Task Should_keep_its_host_running_and_sweep_once_the_store_is_back()
    {
        using var folder = new TempDirectory();
        using var backend = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db"));
        var (store, outage) = OutageProxy<IFileSagaStore>.Wrap(backend.Sagas);
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), folder.Path);
        var id = Guid.NewGuid();
        await backend.Sagas.InsertAsync(new FileState
        {
            CorrelationId = id, CurrentState = "Archived", Campaign = "prompt", Run = 1, Stream = "physics", LogicalName = "raw/a.raw", UpdatedAt = DateTimeOffset.UtcNow,
        }, CancellationToken.None);
        var job = $"jobs/prompt/run000001/{id:N}/attempt-1/0badc0de";
        await areas.Scratch.WriteAsync($"{job}/job.log", (s, ct) => s.WriteAsync("killed\n"u8.ToArray(), ct).AsTask(), CancellationToken.None);
        outage.Down = true;

        // A host with .NET's defaults: an exception escaping a background service stops it. The sweeper asks the
        // orchestrator's answering consumer over a bus; that consumer's store is what is down.
        var builder = Microsoft.Extensions.Hosting.Host.CreateApplicationBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton(areas);
        builder.Services.AddSingleton(store);
        builder.Services.AddMassTransit(bus =>
        {
            bus.AddConsumer<FileStatesQueryConsumer>();
            bus.UsingInMemory((context, memory) => memory.ConfigureEndpoints(context));
        });
        builder.Services.AddSingleton<IFileStates, OrchestratorFileStates>();
        builder.Services.AddSingleton(TimeProvider.System);
        builder.Services.AddSingleton(Options.Create(new CollectorOptions { LeftoverSweepSeconds = 0.05, LeftoverAfterSeconds = 0 }));
        builder.Services.AddHostedService<LeftoverJobFolderSweeper>();
        using var host = builder.Build();
        var lifetime = host.Services.GetRequiredService<IHostApplicationLifetime>();
        await host.StartAsync();

        await Eventually.Until(() => Task.FromResult(Volatile.Read(ref outage.Refused)), n => n >= 3, TimeSpan.FromSeconds(30), "the sweeper to meet the outage three times");
        Assert.False(lifetime.ApplicationStopping.IsCancellationRequested, "the outage stopped the host");
        Assert.True(areas.Scratch.Exists($"{job}/job.log"));

        outage.Down = false;
        await Eventually.Until(() => Task.FromResult(areas.Scratch.Exists($"{job}/job.log")), exists => !exists, TimeSpan.FromSeconds(30), "the leftover job folder to be cleared");
        Assert.False(lifetime.ApplicationStopping.IsCancellationRequested);
        Assert.True(areas.Logs.Exists($"prompt/run000001/physics/{id:N}/attempt-1/leftover-0badc0de/job.log"));
        await host.StopAsync();
    }
}
