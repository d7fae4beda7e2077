using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Orchestrator;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Orchestrator;

public sealed class When_the_watchdog_finds_files_waiting_on_a_paused_stage
{
    [Fact]
    public async Task Should_leave_them_alone_until_the_stage_resumes()
    {
        using var folder = new TempDirectory();
        var store = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db"));
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-26T09:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        foreach (var (name, state) in new[] { ("waits-for-reconstruction", "Staged"), ("waits-for-stage-in", "Staging") })
        {
            await store.Sagas.InsertAsync(new FileState
            {
                CorrelationId = Guid.NewGuid(), CurrentState = state, Campaign = "prompt", Run = 1, Stream = "physics",
                LogicalName = name, UpdatedAt = time.GetUtcNow(), Deadline = time.GetUtcNow().AddMinutes(-1),
            }, CancellationToken.None);
        }
        await using var provider = new ServiceCollection().AddMassTransitTestHarness().BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var pause = new PauseState();
        pause.Set(["reconstruction"]);
        var watchdog = new Watchdog(store.Sagas, provider.GetRequiredService<IBus>(), Options.Create(new OrchestratorOptions()), Options.Create(new PipelineOptions()),
            pause, new CampaignDirectory(store.Campaigns, Options.Create(new CampaignOptions()), time, NullLogger<CampaignDirectory>.Instance), TestSingletons.Over(store, time), time, NullLogger<Watchdog>.Instance);

        Assert.Equal(1, await watchdog.SweepAsync(null, CancellationToken.None));
        Assert.True(await harness.Published.Any<FileStalled>());

        pause.Set([]);
        Assert.Equal(2, await watchdog.SweepAsync(null, CancellationToken.None));
        store.Dispose();
    }
}

public sealed class When_the_watchdog_looks_at_files_awaiting_their_calibration
{
    [Fact]
    public async Task Should_tell_a_file_to_start_once_its_run_is_calibrated_and_to_wait_on_before()
    {
        using var folder = new TempDirectory();
        using var store = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db"));
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-11-26T09:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var file = new FileState
        {
            CorrelationId = Guid.NewGuid(), CurrentState = FileStates.AwaitingCalibration, Campaign = "prompt", Run = 1000, Stream = "physics",
            LogicalName = "raw/a.raw", UpdatedAt = time.GetUtcNow(), Deadline = time.GetUtcNow().AddMinutes(-1),
        };
        await store.Sagas.InsertAsync(file, CancellationToken.None);
        await using var provider = new ServiceCollection().AddMassTransitTestHarness().BuildServiceProvider(true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var campaigns = new CampaignDirectory(store.Campaigns, Options.Create(new CampaignOptions { CalibrationTag = "align-7", RequireCalibration = true }),
            time, NullLogger<CampaignDirectory>.Instance);
        var watchdog = new Watchdog(store.Sagas, provider.GetRequiredService<IBus>(), Options.Create(new OrchestratorOptions()), Options.Create(new PipelineOptions()),
            new PauseState(), campaigns, TestSingletons.Over(store, time), time, NullLogger<Watchdog>.Instance);

        Assert.Equal(1, await watchdog.SweepAsync(null, CancellationToken.None));
        Assert.True(await harness.Published.Any<FileStalled>(m => m.Context.Message.FileId == file.CorrelationId));
        Assert.False(await harness.Published.Any<CheckCalibration>());

        await store.Campaigns.AddCalibrationAsync(new CalibrationRecord("align-7", 900, 1000, "test", time.GetUtcNow()), CancellationToken.None);
        Assert.Equal(1, await watchdog.SweepAsync(null, CancellationToken.None));
        Assert.True(await harness.Published.Any<CheckCalibration>(m => m.Context.Message.FileId == file.CorrelationId));
    }
}
