using Microsoft.Extensions.Logging;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.Control;

/// <summary>
/// Keeps an in-process copy of something every instance reads from the store (pauses, flow-control settings): read
/// once before the bus starts, so the first message already sees it, then again every <paramref name="interval"/>.
/// A failed read keeps the last known copy: a store hiccup changes nothing.
/// </summary>
public abstract class StoreRefresher(TimeSpan interval, TimeProvider time, ILogger logger) : PeriodicWork(time, logger)
{
    protected sealed override TimeSpan Interval => interval;

    protected sealed override bool PassAtStart => false;

    protected sealed override Task RunOnceAsync(CancellationToken stoppingToken) => RefreshAsync(stoppingToken);

    protected abstract Task RefreshAsync(CancellationToken cancellationToken);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshAsync(cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Logger.LogWarning(ex, "{What} failed before start; keeping the defaults until the next refresh", What);
        }
        await base.StartAsync(cancellationToken);
    }
}
