using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Pipeline.Infrastructure.Control;

/// <summary>
/// Keeps an in-process copy of something every instance reads from the store (pauses, flow-control settings): read
/// once before the bus starts, so the first message already sees it, then again every <paramref name="interval"/>.
/// A failed read keeps the last known copy: a store hiccup changes nothing.
/// </summary>
public abstract class StoreRefresher(TimeSpan interval, TimeProvider time, ILogger logger) : BackgroundService
{
    /// <summary>What is read, for the warning when reading fails.</summary>
    protected abstract string What { get; }

    protected abstract Task RefreshAsync(CancellationToken cancellationToken);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        await TryRefreshAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await TryRefreshAsync(stoppingToken);
        }
    }

    private async Task TryRefreshAsync(CancellationToken cancellationToken)
    {
        try
        {
            await RefreshAsync(cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            logger.LogWarning(ex, "Could not read {What}; keeping the last known", What);
        }
    }
}
