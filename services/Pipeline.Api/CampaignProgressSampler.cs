using System.Collections.Concurrent;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>
/// Samples every campaign's progress from the store's state counts (a handful of rows, however many files) and
/// keeps the last <see cref="Window"/> of samples: the measured rates that forecasts are made from.
/// </summary>
public sealed class CampaignProgressSampler(IFileSagaStore store, TimeProvider time, ILogger<CampaignProgressSampler> logger) : PeriodicWork(time, logger)
{
    public static readonly TimeSpan SampleInterval = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, ConcurrentQueue<CampaignProgress>> _samples = new(StringComparer.Ordinal);

    protected override TimeSpan Interval => SampleInterval;

    protected override string What => "Sampling campaign progress";

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SampleAsync(stoppingToken);

    public async Task SampleAsync(CancellationToken cancellationToken)
    {
        var counts = await store.CountByStateAsync(cancellationToken);
        var now = Time.GetUtcNow();
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
        var current = CampaignProgress.From(campaign, await store.CountByStateAsync(cancellationToken), Time.GetUtcNow());
        // A snapshot first: the sampler adds and drops samples meanwhile, and a collection expression sized from the
        // queue's count before reading it ran past the end under load.
        IReadOnlyList<CampaignProgress> samples = _samples.TryGetValue(campaign, out var queue) ? [.. queue.ToArray(), current] : [current];
        return CampaignForecast.From(expectedFiles, samples);
    }
}
