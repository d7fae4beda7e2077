using Microsoft.Extensions.Options;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// Takes out of Slurm's queue the jobs of a campaign an operator paused or cancelled: a job still waiting there would
/// start work nobody wants now. Its file is retried as after any job the site cancelled: held while its campaign is
/// paused and resubmitted when it resumes, or ended as cancelled with its campaign. Running jobs finish.
/// </summary>
public sealed class SlurmQueueKeeper(
    SlurmClient slurm, SlurmJobWatch watch, PauseState pause, CampaignDirectory campaigns, IOptions<SlurmOptions> options, ILogger<SlurmQueueKeeper> logger) : BackgroundService
{
    /// <summary>How the reason of a job this keeper cancelled begins.</summary>
    public const string CancelledBecause = "cancelled while queued:";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = TimeSpan.FromSeconds(options.Value.PollSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await CancelUnwantedAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning("Could not take paused campaigns' jobs out of the queue: {Reason}", ex.Message);
            }
            await Task.Delay(interval, stoppingToken);
        }
    }

    private async Task CancelUnwantedAsync(CancellationToken cancellationToken)
    {
        var unwanted = new List<long>();
        foreach (var (id, campaign) in watch.Pending)
        {
            var why = pause.IsCampaignPaused(campaign) ? $"campaign {campaign} is paused"
                : (await campaigns.GetAsync(campaign, cancellationToken))?.Cancelled == true ? $"campaign {campaign} is cancelled"
                : null;
            if (why is not null)
            {
                watch.NoteCancelled(id, $"{CancelledBecause} {why}");
                unwanted.Add(id);
            }
        }
        if (unwanted.Count > 0)
        {
            logger.LogInformation("Cancelling {Jobs} queued batch jobs of paused or cancelled campaigns", unwanted.Count);
            await slurm.CancelAsync(unwanted, cancellationToken);
        }
    }
}
