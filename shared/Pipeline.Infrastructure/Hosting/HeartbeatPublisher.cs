using MassTransit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Telemetry;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Every instance of every service says it is alive every few seconds; the monitor notices when one falls silent. The
/// heartbeat is also this process's probe of its own bus: RabbitMQ's .NET client can leave the bus's publishing channel
/// stuck after a connection was lost (a declaration waiting for ever on a dead channel, every later publish queued behind
/// it), while its consumers, on channels of their own, have moved to the new connection. When
/// <see cref="RestartAfterTimeouts"/> heartbeats in a row are not confirmed, the bus is stopped and started again, which
/// makes every channel anew; its consumers' unacknowledged messages are delivered again, as after any lost connection.
/// </summary>
public sealed class HeartbeatPublisher(
    IBus bus,
    IBusControl busControl,
    IOptions<PipelineOptions> options,
    IReadOnlyList<PipelineModule> modules,
    IEnumerable<StageCapacity> capacities,
    PipelineMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<HeartbeatPublisher> logger) : PeriodicWork(time, logger)
{
    /// <summary>Heartbeats in a row not confirmed by the broker before the bus is started again.</summary>
    public const int RestartAfterTimeouts = 3;

    /// <summary>How long the bus is given to stop before it is started again.</summary>
    public static readonly TimeSpan StopWithin = TimeSpan.FromMinutes(5);

    /// <summary>The exit code of a process whose bus could not be stopped to be started again (EX_TEMPFAIL: start it again).</summary>
    public const int ExitCodeForRestart = 75;

    private DateTimeOffset _upSince;
    private int _timeoutsInARow;

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

    protected override async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        var load = capacities.Select(c => new StageLoad(c.Stage, metrics.BusyNow(c.Stage), c.Capacity)).ToList();
        var services = string.Join(",", modules.Select(m => m.Name));
        await bus.PublishBoundedAsync(new InstanceHeartbeat(options.Value.EffectiveInstanceName, services, Environment.MachineName, _upSince, Time.GetUtcNow(), load), stoppingToken);
        _timeoutsInARow = 0;
    }

    // A broker that refuses or cannot be reached fails at once, and the client makes its connection again by itself; only
    // a publish left unconfirmed, again and again, says the bus's own channel is stuck.
    protected override bool IsExpectedFailure(Exception failure) => failure is TimeoutException;

    protected override async Task OnFailedAsync(Exception failure, CancellationToken stoppingToken)
    {
        if (failure is not TimeoutException || options.Value.Transport != TransportKind.RabbitMq || ++_timeoutsInARow < RestartAfterTimeouts)
        {
            return;
        }
        _timeoutsInARow = 0;
        Logger.LogWarning("The broker confirmed none of the last {Count} heartbeats of this instance: its publishing channel is taken as stuck, and the bus is started again. "
            + "If this repeats, check the broker's log and this host's link to it", RestartAfterTimeouts);
        // Stopping waits for the consumes in flight (a batch of stage-ins, say), whose reports may wait on the stuck
        // channel until their own time-out: it is given minutes. A stop cut short leaves a bus that is neither stopped
        // nor running, which starting again does not mend (it says it is started, and its endpoints take nothing more).
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        limit.CancelAfter(StopWithin);
        try
        {
            await busControl.StopAsync(limit.Token);
        }
        catch (OperationCanceledException) when (limit.IsCancellationRequested && !stoppingToken.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Logger.LogWarning("Stopping the bus failed ({Reason}); starting it again all the same", ex.Message);
        }
        if (stoppingToken.IsCancellationRequested)
        {
            return;
        }
        if (limit.IsCancellationRequested)
        {
            Logger.LogCritical("The bus did not stop within {Minutes} min to be started again: the process exits (code {Code}) so that its supervisor starts it anew. "
                + "Check the broker's log and this host's link to it", StopWithin.TotalMinutes, ExitCodeForRestart);
            Environment.ExitCode = ExitCodeForRestart;
            lifetime.StopApplication();
            return;
        }
        await busControl.StartAsync(stoppingToken);
        Logger.LogInformation("The bus is started again");
    }
}
