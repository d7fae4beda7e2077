using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Pipeline.Infrastructure.State;

namespace Pipeline.Infrastructure.Telemetry;

/// <summary>
/// Reads the files per campaign and state from the store every few seconds for the pipeline.files gauge.
/// Counted from the store, not from transitions, so a transition retried after a lost race counts once.
/// </summary>
public sealed class FileStateCounter(IFileSagaStore store, PipelineMetrics metrics, TimeProvider time, ILogger<FileStateCounter> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                metrics.SetFileCounts(await store.CountByStateAsync(stoppingToken));
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Could not count the files per state for the metrics");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
