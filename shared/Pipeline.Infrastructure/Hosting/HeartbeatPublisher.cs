using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>Every instance of every service says it is alive every few seconds; the monitor notices when one falls silent.</summary>
public sealed class HeartbeatPublisher(
    IBus bus,
    IOptions<PipelineOptions> options,
    IReadOnlyList<PipelineModule> modules,
    TimeProvider time,
    ILogger<HeartbeatPublisher> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = time.GetUtcNow();
        var services = string.Join(",", modules.Select(m => m.Name));
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.HeartbeatSeconds), time);
        do
        {
            try
            {
                await bus.Publish(new InstanceHeartbeat(options.Value.EffectiveInstanceName, services, Environment.MachineName, started, time.GetUtcNow()), stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The broker may be down; the monitor will report this instance silent, which is the truth.
                logger.LogWarning(ex, "Could not send a heartbeat");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
