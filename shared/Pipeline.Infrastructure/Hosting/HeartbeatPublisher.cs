using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Telemetry;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>Every instance of every service says it is alive every few seconds; the monitor notices when one falls silent.</summary>
public sealed class HeartbeatPublisher(
    IBus bus,
    IOptions<PipelineOptions> options,
    IReadOnlyList<PipelineModule> modules,
    IEnumerable<StageCapacity> capacities,
    PipelineMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<HeartbeatPublisher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // The first heartbeat goes out once the bus has started, with everything else.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            await started.Task;
        }
        var upSince = time.GetUtcNow();
        var services = string.Join(",", modules.Select(m => m.Name));
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.HeartbeatSeconds), time);
        do
        {
            try
            {
                var load = capacities.Select(c => new StageLoad(c.Stage, metrics.BusyNow(c.Stage), c.Capacity)).ToList();
                await bus.Publish(new InstanceHeartbeat(options.Value.EffectiveInstanceName, services, Environment.MachineName, upSince, time.GetUtcNow(), load), stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // The broker may be down; the monitor will report this instance silent, which is the truth.
                logger.LogWarning(ex, "Could not send a heartbeat");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
