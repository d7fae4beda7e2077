using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Finds files whose step has not moved within its time limit (a lost message, a dead worker, a
/// restart of the in-memory transport) and tells their sagas, which re-issue the step. A file awaiting its
/// calibration is due now and then too: it is told to start if the calibration is there (an announcement can
/// cross its registration), or else to wait on.
/// </summary>
public sealed class Watchdog(
    IFileSagaStore store,
    IBus bus,
    IOptions<OrchestratorOptions> options,
    IOptions<PipelineOptions> pipeline,
    PauseState pause,
    CampaignDirectory campaigns,
    SingletonLeases singletons,
    TimeProvider time,
    ILogger<Watchdog> logger) : PeriodicWork(time, logger)
{
    protected override ISingletonGate Singleton { get; } = singletons.For(Singletons.Watchdog);

    private const int BatchSize = 500;

    /// <summary>How long one stalled file's message may take to leave before the sweep gives up until the next.</summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(30);

    private DateTimeOffset? _recoverUntouchedSince;

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.WatchdogIntervalSeconds);

    protected override string What => "The watchdog sweep";

    protected override Task BeforeFirstPassAsync(CancellationToken stoppingToken)
    {
        // The in-memory transport lost every message when the process stopped: whatever was in flight then is re-issued.
        var recoverAll = options.Value.RecoverInFlightOnStart ?? pipeline.Value.Transport == TransportKind.InMemory;
        _recoverUntouchedSince = recoverAll ? Time.GetUtcNow() : null;
        return Task.CompletedTask;
    }

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SweepAsync(_recoverUntouchedSince, stoppingToken);

    /// <summary>One pass: every stalled file (up to a batch) is reported once.</summary>
    public async Task<int> SweepAsync(DateTimeOffset? notTouchedSince, CancellationToken cancellationToken)
    {
        var found = await store.FindStalledAsync(Time.GetUtcNow(), notTouchedSince, BatchSize, cancellationToken);
        // A file waiting on a paused stage or in a paused campaign is not stalled: it waits for an operator, and must not use up its re-issues.
        var stalled = found.Where(f => !pause.IsPaused(NextStage(f.State)) && !pause.IsCampaignPaused(f.Campaign)).ToList();
        var told = 0;
        foreach (var file in stalled)
        {
            // A publish can wait without end on a connection the broker dropped: a watchdog stuck there would
            // rescue nothing again. Give up on this sweep instead; the files are still stalled at the next one.
            var publish = await IsCalibratedAsync(file, cancellationToken)
                ? bus.PublishBoundedAsync(new CheckCalibration(file.Id, file.Run, file.Stream, file.Campaign), cancellationToken)
                : bus.PublishBoundedAsync(new FileStalled(file.Id, file.Run, file.Stream, file.Campaign, file.Version), cancellationToken);
            try
            {
                await publish.WaitAsync(PublishTimeout, Time, cancellationToken);
            }
            catch (TimeoutException)
            {
                Logger.LogWarning("Watchdog: telling stalled file {FileId} did not finish within {Seconds} s (is the broker reachable?); the rest of this sweep waits for the next", file.Id, PublishTimeout.TotalSeconds);
                break;
            }
            told++;
        }
        if (stalled.Count > 0)
        {
            Logger.LogWarning("Watchdog: {Count} files made no progress in time; the steps of {Told} are issued again", stalled.Count, told);
        }
        return told;
    }

    private async Task<bool> IsCalibratedAsync(StalledFile file, CancellationToken cancellationToken) =>
        file.State == FileStates.AwaitingCalibration && await campaigns.AwaitedCalibrationAsync(file.Campaign, file.Run, cancellationToken) is null;

    /// <summary>The stage a file in this state waits on.</summary>
    public static string NextStage(string state) => state switch
    {
        FileStates.Registered or FileStates.AwaitingCalibration or FileStates.Staging => "stager",
        FileStates.Staged or FileStates.Queued or FileStates.Reconstructing => "reconstruction",
        _ => "merger",
    };
}
