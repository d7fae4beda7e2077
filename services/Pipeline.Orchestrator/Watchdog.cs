using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Control;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Finds files whose step has not moved within its time limit (a lost message, a dead worker, a
/// restart of the in-memory transport) and tells their sagas, which re-issue the step.
/// </summary>
public sealed class Watchdog(
    IFileSagaStore store,
    IBus bus,
    IOptions<OrchestratorOptions> options,
    IOptions<PipelineOptions> pipeline,
    PauseState pause,
    TimeProvider time,
    ILogger<Watchdog> logger) : BackgroundService
{
    private const int BatchSize = 500;

    /// <summary>How long one stalled file's message may take to leave before the sweep gives up until the next.</summary>
    private static readonly TimeSpan PublishTimeout = TimeSpan.FromSeconds(30);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var startedAt = time.GetUtcNow();
        var recoverAll = options.Value.RecoverInFlightOnStart ?? pipeline.Value.Transport == TransportKind.InMemory;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.WatchdogIntervalSeconds), time);
        do
        {
            try
            {
                await SweepAsync(recoverAll ? startedAt : null, stoppingToken);
            }
            // Anything but the service stopping, a cancelled publish included: a sweep that ended the loop would leave
            // every later stall unrescued, silently.
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Watchdog sweep failed; trying again next interval");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>One pass: every stalled file (up to a batch) is reported once.</summary>
    public async Task<int> SweepAsync(DateTimeOffset? notTouchedSince, CancellationToken cancellationToken)
    {
        var found = await store.FindStalledAsync(time.GetUtcNow(), notTouchedSince, BatchSize, cancellationToken);
        // A file waiting on a paused stage or in a paused campaign is not stalled: it waits for an operator, and must not use up its re-issues.
        var stalled = found.Where(f => !pause.IsPaused(NextStage(f.State)) && !pause.IsCampaignPaused(f.Campaign)).ToList();
        var told = 0;
        foreach (var file in stalled)
        {
            // A publish can wait without end on a connection the broker dropped: a watchdog stuck there would
            // rescue nothing again. Give up on this sweep instead; the files are still stalled at the next one.
            var publish = bus.Publish(new FileStalled(file.Id, file.Run, file.Stream, file.Campaign, file.Version), cancellationToken);
            try
            {
                await publish.WaitAsync(PublishTimeout, time, cancellationToken);
            }
            catch (TimeoutException)
            {
                logger.LogWarning("Watchdog: telling stalled file {FileId} did not finish within {Seconds} s (is the broker reachable?); the rest of this sweep waits for the next", file.Id, PublishTimeout.TotalSeconds);
                break;
            }
            told++;
        }
        if (stalled.Count > 0)
        {
            logger.LogWarning("Watchdog: {Count} files made no progress in time; the steps of {Told} are issued again", stalled.Count, told);
        }
        return told;
    }

    /// <summary>The stage a file in this state waits on.</summary>
    public static string NextStage(string state) => state switch
    {
        "Registered" or "AwaitingCalibration" or "Staging" => "stager",
        "Staged" or "Queued" or "Reconstructing" => "reconstruction",
        _ => "merger",
    };
}
