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
    ILogger<HeartbeatPublisher> logger) : PeriodicWork(time, logger)
{
    private DateTimeOffset _upSince;

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.HeartbeatSeconds);

    // The broker may be down; the monitor will then report this instance silent, which is the truth.
    protected override string What => "Sending a heartbeat";

    protected override async Task BeforeFirstPassAsync(CancellationToken stoppingToken)
    {
        // The first heartbeat goes out once the bus has started, with everything else.
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using (lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        await using (stoppingToken.Register(() => started.TrySetCanceled(stoppingToken)))
        {
            await started.Task;
        }
        _upSince = Time.GetUtcNow();
    }

    protected override Task RunOnceAsync(CancellationToken stoppingToken)
    {
        var load = capacities.Select(c => new StageLoad(c.Stage, metrics.BusyNow(c.Stage), c.Capacity)).ToList();
        var services = string.Join(",", modules.Select(m => m.Name));
        return bus.PublishBoundedAsync(new InstanceHeartbeat(options.Value.EffectiveInstanceName, services, Environment.MachineName, _upSince, Time.GetUtcNow(), load), stoppingToken);
    }
}
