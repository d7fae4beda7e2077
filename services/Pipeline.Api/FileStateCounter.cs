using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>
/// Reads the files per campaign and state from the store every few seconds for the pipeline.files gauge (every known
/// campaign in every state, at 0 where no file is), and each
/// scalable stage's backlog for pipeline.backlog (every campaign and stage from the first pass, at 0 where nothing
/// waits). Counted from the store, not from transitions, so a transition retried after a lost race counts once.
/// </summary>
public sealed class FileStateCounter(
    IFileSagaStore store, ICampaignStore campaigns, IMergeStore merges, PipelineMetrics metrics, TimeProvider time, ILogger<FileStateCounter> logger)
    : PeriodicWork(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(5);

    protected override string What => "Counting the files per state for the metrics";

    protected override async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        var counts = await store.CountByStateAsync(stoppingToken);
        var known = (await campaigns.ListCampaignsAsync(stoppingToken)).Select(c => c.Name).ToList();
        // Every campaign in every state, at 0 where no file is: a rate or an alert on a state reads 0, not "absent".
        var files = counts.ToDictionary(c => (c.Campaign, c.State), c => c.Files);
        metrics.SetFileCounts([.. known.Union(counts.Select(c => c.Campaign), StringComparer.Ordinal)
            .SelectMany(campaign => FileStates.All.Order(StringComparer.Ordinal).Select(state => new FileCount(campaign, state, files.GetValueOrDefault((campaign, state)))))]);
        metrics.SetBacklog(Backlog.Of(known, counts, await merges.CountUnarchivedAsync(stoppingToken)));
    }
}
