using System.Collections.Concurrent;
using Pipeline.Infrastructure.Campaigns;
using Pipeline.Infrastructure.State;

namespace Pipeline.Api;

/// <summary>
/// Samples every campaign's progress from the store's state counts (a handful of rows, however many files) and
/// keeps the last <see cref="Window"/> of samples: the measured rates that forecasts are made from.
/// </summary>
public sealed class CampaignProgressSampler(IFileSagaStore store, TimeProvider time, ILogger<CampaignProgressSampler> logger) : BackgroundService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, ConcurrentQueue<CampaignProgress>> _samples = new(StringComparer.Ordinal);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                await SampleAsync(stoppingToken);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                logger.LogWarning(ex, "Sampling campaign progress failed; trying again next interval");
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    public async Task SampleAsync(CancellationToken cancellationToken)
    {
        var counts = await store.CountByStateAsync(cancellationToken);
        var now = time.GetUtcNow();
        foreach (var campaign in counts.Select(c => c.Campaign).Distinct(StringComparer.Ordinal))
        {
            var samples = _samples.GetOrAdd(campaign, _ => new ConcurrentQueue<CampaignProgress>());
            samples.Enqueue(CampaignProgress.From(campaign, counts, now));
            while (samples.TryPeek(out var oldest) && now - oldest.At > Window && samples.Count > 2)
            {
                samples.TryDequeue(out _);
            }
        }
    }

    /// <summary>The campaign's forecast from the samples in the window and its counts now.</summary>
    public async Task<CampaignForecast> ForecastAsync(string campaign, long expectedFiles, CancellationToken cancellationToken)
    {
        var current = CampaignProgress.From(campaign, await store.CountByStateAsync(cancellationToken), time.GetUtcNow());
        IReadOnlyList<CampaignProgress> samples = _samples.TryGetValue(campaign, out var queue) ? [.. queue, current] : [current];
        return CampaignForecast.From(expectedFiles, samples);
    }
}
