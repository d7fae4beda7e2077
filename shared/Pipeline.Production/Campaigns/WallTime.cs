using System.ComponentModel.DataAnnotations;
using Pipeline.Production.State;

namespace Pipeline.Production.Campaigns;

/// <summary>How a campaign's job time limit follows from the run times it has measured.</summary>
public sealed class WallTimeOptions
{
    public const string Section = "Pipeline:WallTime";

    /// <summary>The run time that this fraction of the campaign's files took at most is the base of the limit.</summary>
    [Range(0.5, 1.0)]
    public double Quantile { get; set; } = 0.99;

    /// <summary>The limit is the base times this.</summary>
    [Range(1.0, 100)]
    public double Factor { get; set; } = 1.5;

    /// <summary>The least limit a measured campaign gets: short jobs still get time for a slow node or a cold cache.</summary>
    [Range(1, 7 * 24 * 3600)]
    public int FloorSeconds { get; set; } = 600;

    /// <summary>Files a campaign must have measured before its limit follows them; until then, the release's own limit.</summary>
    [Range(1, 100000)]
    public int MinimumFiles { get; set; } = 20;
}

/// <summary>A campaign's time limit for its next jobs, and what it was derived from.</summary>
public sealed record WallTimeLimit(int Seconds, string Basis, long MeasuredFiles, double? Median, double? Base);

public static class WallTime
{
    /// <summary>
    /// The limit for a campaign's next jobs: the measured quantile times the factor, no less than the floor and no more
    /// than the release's own limit (the most the campaign allows; set it to the batch partition's maximum). With too
    /// few files measured, the release's limit.
    /// </summary>
    public static WallTimeLimit For(RunTimeHistogram measured, int releaseSeconds, WallTimeOptions options)
    {
        var files = measured.Files;
        var median = measured.Quantile(0.5);
        if (files < options.MinimumFiles || measured.Quantile(options.Quantile) is not { } quantile)
        {
            return new WallTimeLimit(releaseSeconds, $"the release's limit: {files} of {options.MinimumFiles} files measured", files, median, null);
        }
        var derived = (int)Math.Ceiling(quantile * options.Factor);
        var seconds = Math.Clamp(derived, Math.Min(options.FloorSeconds, releaseSeconds), releaseSeconds);
        var basis = $"p{options.Quantile * 100:0.#} {quantile:0}s x {options.Factor:0.##} = {derived}s"
            + (seconds > derived ? $", raised to the floor {seconds}s" : seconds < derived ? $", capped at the release's {seconds}s" : "");
        return new WallTimeLimit(seconds, basis, files, median, quantile);
    }
}

/// <summary>
/// Campaigns' time limits as this process last derived them, at most <see cref="RefreshInterval"/> old: a worker asks
/// once per job, and the histogram behind it changes slowly.
/// </summary>
public sealed class CampaignWallTimes(IRunTimeStore runTimes, Microsoft.Extensions.Options.IOptions<WallTimeOptions> options, TimeProvider time)
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(30);

    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (RunTimeHistogram Measured, DateTimeOffset ReadAt)> _read = new(StringComparer.Ordinal);

    /// <summary>The limit for the campaign's next job, given the release's own limit.</summary>
    public async Task<WallTimeLimit> LimitAsync(string campaign, int releaseSeconds, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (!_read.TryGetValue(campaign, out var read) || now - read.ReadAt > RefreshInterval)
        {
            read = (await runTimes.GetAsync(campaign, cancellationToken), now);
            _read[campaign] = read;
        }
        return WallTime.For(read.Measured, releaseSeconds, options.Value);
    }
}
