using Microsoft.Extensions.Logging;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.State;

namespace Pipeline.Production.Hosting;

/// <summary>
/// What a stage tells about its work: to the metrics of this process, and to the throughput log (per minute and per
/// hour, per campaign) that the admin API and dashboard read for every instance together.
/// </summary>
public sealed class StageReporter(PipelineMetrics metrics, IActivityLog activity, TimeProvider time, ILogger<StageReporter> logger)
{
    public async Task CompletedAsync(string stage, string campaign, long bytes, TimeSpan took, CancellationToken cancellationToken)
    {
        metrics.Completed(stage, bytes, took);
        try
        {
            await activity.RecordAsync(stage, campaign, time.GetUtcNow(), bytes, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Throughput statistics are not worth failing (and so repeating) a step that is done.
            logger.LogWarning(ex, "Could not record the {Stage} activity", stage);
        }
    }

    public void Failed(string stage, string reason) => metrics.Failed(stage, reason);

    public IDisposable Busy(string stage) => metrics.Busy(stage);
}
