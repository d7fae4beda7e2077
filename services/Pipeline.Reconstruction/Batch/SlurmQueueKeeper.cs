using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// Takes out of Slurm's queue the jobs of a campaign an operator paused or cancelled: a job still waiting there would
/// start work nobody wants now. Its file is retried as after any job the site cancelled: held while its campaign is
/// paused and resubmitted when it resumes, or ended as cancelled with its campaign. Running jobs finish.
/// </summary>
public sealed class SlurmQueueKeeper(
    SlurmClient slurm, SlurmJobWatch watch, PauseState pause, CampaignDirectory campaigns, IOptions<SlurmOptions> options, TimeProvider time, ILogger<SlurmQueueKeeper> logger)
    : PeriodicWork(time, logger)
{
    /// <summary>How the reason of a job this keeper cancelled begins.</summary>
    public const string CancelledBecause = "cancelled while queued:";

    /// <summary>True if this keeper cancelled the job because its campaign is paused (not cancelled).</summary>
    public static bool CancelledForPause(ReleaseOutcome outcome, string campaign) =>
        outcome is { SiteFailure: true, BatchState: "CANCELLED" } && outcome.BatchReason == $"{CancelledBecause} {PausedBecause(campaign)}";

    private static string PausedBecause(string campaign) => $"campaign {campaign} is paused";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.PollSeconds);

    protected override string What => "Taking paused campaigns' jobs out of the queue";

    protected override bool IsExpectedFailure(Exception failure) => SlurmClient.IsExpectedFailure(failure);

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => CancelUnwantedAsync(stoppingToken);

    private async Task CancelUnwantedAsync(CancellationToken cancellationToken)
    {
        var unwanted = new List<long>();
        foreach (var (id, campaign) in watch.Pending)
        {
            var why = pause.IsCampaignPaused(campaign) ? PausedBecause(campaign)
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
            Logger.LogInformation("Cancelling {Jobs} queued batch jobs of paused or cancelled campaigns", unwanted.Count);
            await slurm.CancelAsync(unwanted, cancellationToken);
        }
    }
}
