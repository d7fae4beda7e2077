using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Work a service does over and over for as long as it runs: sweeps, refreshes, heartbeats, dispatch passes.
/// Every such loop keeps one rule. A pass that fails is logged and tried again after a back-off that doubles
/// with each failure in a row (from <see cref="Interval"/> up to <see cref="MaxBackoff"/>, or the interval when
/// that is longer); the loop ends only when its service stops. Whatever the failure — a store outage, a broker
/// gone, a publish cancelled under it — a loop that ended would leave its work undone without a word, and by
/// .NET's default an exception escaping a background service stops the whole host.
/// </summary>
public abstract class PeriodicWork(TimeProvider time, ILogger logger) : BackgroundService
{
    /// <summary>The longest pause between tries while passes keep failing (unless the interval itself is longer).</summary>
    public static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(10);

    protected TimeProvider Time { get; } = time;

    protected ILogger Logger { get; } = logger;

    /// <summary>Consecutive failed passes right now; 0 once a pass succeeds.</summary>
    public int FailuresInARow { get; private set; }

    /// <summary>Passes that completed without an exception, since the service started.</summary>
    public long PassesCompleted { get; private set; }

    /// <summary>The pause between passes while they succeed.</summary>
    protected abstract TimeSpan Interval { get; }

    /// <summary>What a pass does, in words, for the log (e.g. "the watchdog sweep").</summary>
    protected abstract string What { get; }

    /// <summary>
    /// For work that must run on one instance of the whole system at a time: the gate whose lease a pass needs. An
    /// instance that does not hold it skips its passes (asking again at each); null for work every instance does.
    /// </summary>
    protected virtual ISingletonGate? Singleton => null;

    /// <summary>Whether the first pass runs as soon as the service starts, or only after the first interval.</summary>
    protected virtual bool PassAtStart => true;

    /// <summary>One pass of the work.</summary>
    protected abstract Task RunOnceAsync(CancellationToken stoppingToken);

    /// <summary>Before the first pass (e.g. until the application has started); the loop starts when this returns.</summary>
    protected virtual Task BeforeFirstPassAsync(CancellationToken stoppingToken) => Task.CompletedTask;

    /// <summary>
    /// A failure the loop expects now and then (a batch system or storage endpoint that does not answer): logged as a
    /// warning with its message, without a stack. Anything else is logged with its stack.
    /// </summary>
    protected virtual bool IsExpectedFailure(Exception failure) => false;

    /// <summary>Told of each failed pass, after it is logged.</summary>
    protected virtual Task OnFailedAsync(Exception failure, CancellationToken stoppingToken) => Task.CompletedTask;

    /// <summary>Told when a pass succeeds after one or more failed.</summary>
    protected virtual Task OnRecoveredAsync(int failures, CancellationToken stoppingToken) => Task.CompletedTask;

    /// <summary>The pause before the next pass; a loop that can be woken early overrides it.</summary>
    protected virtual Task PauseAsync(TimeSpan delay, CancellationToken stoppingToken) => Task.Delay(delay, Time, stoppingToken);

    /// <summary>The pause after <paramref name="failures"/> failed passes in a row (0: after a pass that succeeded).</summary>
    public static TimeSpan DelayAfter(int failures, TimeSpan interval)
    {
        if (failures <= 0)
        {
            return interval;
        }
        var ceiling = interval > MaxBackoff ? interval : MaxBackoff;
        var doubled = interval.Ticks * Math.Pow(2, Math.Min(failures - 1, 30));
        return doubled >= ceiling.Ticks ? ceiling : TimeSpan.FromTicks((long)doubled);
    }

    protected sealed override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await BeforeFirstPassAsync(stoppingToken);
            if (!PassAtStart)
            {
                await PauseAsync(Interval, stoppingToken);
            }
            while (!stoppingToken.IsCancellationRequested)
            {
                await RunGuardedAsync(stoppingToken);
                await PauseAsync(DelayAfter(FailuresInARow, Interval), stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The service is stopping: the only way out.
        }
        finally
        {
            await ReleaseSingletonAsync();
        }
    }

    // A clean stop hands the work over at once instead of after the lease runs out.
    private async Task ReleaseSingletonAsync()
    {
        if (Singleton is not { Token: not null } gate)
        {
            return;
        }
        try
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await gate.ReleaseAsync(limit.Token);
        }
        catch (Exception ex)
        {
            Logger.LogWarning("Could not give up singleton {Singleton} ({Reason}); another instance takes it when its lease runs out", gate.Name, ex.Message);
        }
    }

    private async Task RunGuardedAsync(CancellationToken stoppingToken)
    {
        var gate = Singleton;
        try
        {
            if (gate is not null && !await gate.HoldAsync(stoppingToken))
            {
                return;
            }
            // A singleton's pass runs only as long as this instance's term: a holder that cannot renew stops its pass
            // before the lease can have run out.
            using var term = gate is null ? null : CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, gate.Lost);
            await RunOnceAsync(term?.Token ?? stoppingToken);
            PassesCompleted++;
            if (FailuresInARow > 0)
            {
                var failures = FailuresInARow;
                FailuresInARow = 0;
                Logger.LogInformation("{What} works again after {Failures} failed passes", What, failures);
                await OnRecoveredAsync(failures, stoppingToken);
            }
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested && gate is not null && (ex is StaleFenceException || gate.Lost.IsCancellationRequested))
        {
            // Not a failure of the work: another instance does it now, and this one's late writes were refused.
            Logger.LogWarning("{What} stopped: this instance no longer holds singleton {Singleton} ({Reason})", What, gate.Name, ex.Message);
        }
        catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
        {
            FailuresInARow++;
            var delay = DelayAfter(FailuresInARow, Interval);
            if (IsExpectedFailure(ex))
            {
                Logger.LogWarning("{What} failed ({Failures} in a row): {Reason}; trying again in {Delay}", What, FailuresInARow, ex.Message, delay);
            }
            else
            {
                Logger.LogWarning(ex, "{What} failed ({Failures} in a row); trying again in {Delay}", What, FailuresInARow, delay);
            }
            try
            {
                await OnFailedAsync(ex, stoppingToken);
            }
            catch (Exception reportFailure) when (!stoppingToken.IsCancellationRequested)
            {
                Logger.LogWarning(reportFailure, "Reporting the failure of {What} failed too", What);
            }
        }
    }
}
