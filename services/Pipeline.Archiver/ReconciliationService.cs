using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Audit;

namespace Pipeline.Archiver;

/// <summary>
/// Runs the reconciliation sweep every <see cref="ReconciliationSettings.IntervalMinutes"/>, in the service that
/// owns the archive areas. What it finds is raised as alerts (one per bad or dark file) and logged.
/// </summary>
public sealed class ReconciliationService(Reconciler reconciler, IOptions<ReconciliationSettings> options, TimeProvider time, ILogger<ReconciliationService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.IntervalMinutes <= 0)
        {
            return;
        }
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(options.Value.IntervalMinutes), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await reconciler.RunAsync(options.Value.ToOptions(), stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Reconciliation sweep failed; the next one runs in {Minutes} min", options.Value.IntervalMinutes);
            }
        }
    }
}
