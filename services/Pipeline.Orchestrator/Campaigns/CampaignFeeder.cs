using System.Globalization;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator.Campaigns;

/// <summary>
/// Registers the files of reprocessing and Monte Carlo campaigns: walks the catalogued runs in order and
/// registers the next batch of a campaign's files whenever fewer than <see cref="OrchestratorOptions.FeedWindowFiles"/>
/// of them are still short of reconstruction. So a campaign over millions of files keeps a bounded number in
/// the broker and the store's working set, and a crash repeats at most one batch (registration is idempotent).
/// </summary>
public sealed class CampaignFeeder(
    IFileSagaStore sagas,
    IRunRegistry runRegistry,
    ICampaignStore campaignStore,
    CampaignDirectory campaigns,
    PauseState pause,
    IBus bus,
    IOptions<OrchestratorOptions> options,
    SingletonLeases singletons,
    TimeProvider time,
    ILogger<CampaignFeeder> logger) : PeriodicWork(time, logger)
{
    protected override ISingletonGate Singleton { get; } = singletons.For(Singletons.CampaignFeeder);

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.FeedIntervalSeconds);

    protected override string What => "Feeding campaigns";

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => FeedAsync(stoppingToken);

    /// <summary>One pass over the campaigns that still have files to register. Returns how many were registered.</summary>
    public async Task<int> FeedAsync(CancellationToken cancellationToken)
    {
        var open = (await campaigns.ListAsync(cancellationToken))
            .Where(c => c.Definition.Kind != CampaignKinds.Prompt && !c.Cancelled && !c.Feed.Complete && !pause.IsCampaignPaused(c.Name))
            .ToList();
        if (open.Count == 0)
        {
            return 0;
        }
        var counts = await sagas.CountByStateAsync(cancellationToken);
        var registered = 0;
        foreach (var campaign in open)
        {
            var mine = counts.Where(c => c.Campaign == campaign.Name).ToList();
            var unfinished = mine.Where(c => FileStates.BeforeReconstructed.Contains(c.State)).Sum(c => c.Files);
            // Registrations published but not yet stored as sagas count too, or a slow orchestrator would be fed past the window.
            var inFlight = Math.Max(0, campaign.Feed.Registered - mine.Sum(c => c.Files));
            var room = (int)Math.Min(options.Value.FeedBatchFiles, options.Value.FeedWindowFiles - unfinished - inFlight);
            if (room > 0)
            {
                registered += await FeedAsync(campaign, room, cancellationToken);
            }
        }
        return registered;
    }

    private async Task<int> FeedAsync(CampaignRecord campaign, int room, CancellationToken cancellationToken)
    {
        var feed = campaign.Feed;
        var registered = 0;
        while (registered < room && !feed.Complete)
        {
            // The cursor's run may still have files left, so the walk starts at it, not after it.
            var runs = await runRegistry.ListAnnouncementsAsync(feed.Run - 1, 20, cancellationToken);
            if (runs.Count == 0 || runs[0].Run > feed.UpToRun)
            {
                feed = feed with { Complete = true };
                break;
            }
            foreach (var run in runs)
            {
                if (run.Run > feed.UpToRun)
                {
                    feed = feed with { Complete = true };
                    break;
                }
                var files = CampaignService.SelectedFiles(campaign.Definition, run);
                var start = run.Run == feed.Run ? feed.Index + 1 : 0;
                var index = start;
                var awaited = start < files.Count ? await campaigns.AwaitedCalibrationAsync(campaign.Name, run.Run, cancellationToken) : null;
                for (; index < files.Count && registered < room; index++)
                {
                    await bus.PublishBoundedAsync(Registration(campaign, run, files[index], awaited), cancellationToken);
                    registered++;
                }
                feed = feed with { Run = run.Run, Index = index - 1, Registered = feed.Registered + (index - start) };
                if (registered >= room)
                {
                    break;
                }
                // This run is done: the next starts at its first file.
                feed = feed with { Run = run.Run + 1, Index = -1 };
                if (run.Run == feed.UpToRun)
                {
                    feed = feed with { Complete = true };
                    break;
                }
            }
            if (runs.Count < 20 && registered < room)
            {
                feed = feed with { Complete = true };
            }
        }
        // Saved after publishing: a crash in between publishes the batch again, which registers nothing twice.
        if (!await campaignStore.ReplaceCampaignAsync(campaign with { Feed = feed, UpdatedAt = Time.GetUtcNow() }, campaign.Version, Singleton.Fence, cancellationToken))
        {
            Logger.LogInformation("Campaign {Campaign} changed while its files were registered; its feed continues from the stored position", campaign.Name);
        }
        campaigns.Invalidate();
        if (feed.Complete && !campaign.Feed.Complete)
        {
            Logger.LogInformation("Campaign {Campaign}: all {Files} files registered", campaign.Name, feed.Registered);
        }
        return registered;
    }

    /// <summary>
    /// A raw file entering the campaign; for Monte Carlo, a simulated file standing for it, with the configured
    /// multiple of its events (and of its size, as the estimate of what reconstruction will write).
    /// </summary>
    public static FileRegistered Registration(CampaignRecord campaign, RunRecorded run, RawFileRecord file, string? awaitedCalibration)
    {
        if (!campaign.Definition.IsMonteCarlo)
        {
            return RunIngestion.Registered(campaign, run.Run, file, awaitedCalibration);
        }
        var multiple = campaign.Definition.EffectiveEventsMultiple;
        var name = string.Create(CultureInfo.InvariantCulture, $"sim/run{run.Run:D6}/{file.Stream}/run{run.Run:D6}_{file.Stream}_{file.Section:D4}.sim");
        return new FileRegistered(FileIds.For(campaign.Name, name), run.Run, file.Stream!, campaign.Name, name, file.Section,
            (long)Math.Ceiling(file.Size * multiple), "", (long)Math.Round(file.Events * multiple, MidpointRounding.AwayFromZero), campaign.Definition.Terms(),
            ConditionsText(run.Conditions), awaitedCalibration);
    }

    /// <summary>A run's conditions as "name=value,..." in name order (empty if it recorded none): how the release is given them.</summary>
    public static string ConditionsText(IReadOnlyDictionary<string, string>? conditions) =>
        string.Join(',', (conditions ?? new Dictionary<string, string>()).OrderBy(c => c.Key, StringComparer.Ordinal).Select(c => $"{c.Key}={c.Value}"));
}
