namespace Pipeline.Production.State;

/// <summary>
/// Files and bytes each stage finished for each campaign, per minute and per hour: production's throughput over time,
/// for every instance together. Round-robin like an RRD: each resolution keeps a fixed window
/// (<see cref="ThroughputWindow"/>), and a bucket older than its window is dropped as new ones are written, so the log
/// stays the same size however long production runs.
/// </summary>
public interface IActivityLog
{
    /// <summary>Adds one finished step of a stage for a campaign, with its bytes, to the minute and the hour it finished in.</summary>
    Task RecordAsync(string stage, string campaign, DateTimeOffset at, long bytes, CancellationToken cancellationToken);

    /// <summary>The buckets of one resolution from the one holding <paramref name="since"/> on, in time order, then stage and campaign.</summary>
    Task<IReadOnlyList<StageActivity>> ListActivityAsync(ThroughputResolution resolution, DateTimeOffset since, CancellationToken cancellationToken);
}

public enum ThroughputResolution
{
    Minute,
    Hour,
}

/// <summary>How long each resolution is kept, and how a time falls into its bucket.</summary>
public static class ThroughputWindow
{
    /// <summary>Per minute for the last six hours: 360 buckets per stage and campaign.</summary>
    public static readonly TimeSpan Minutes = TimeSpan.FromHours(6);

    /// <summary>Per hour for the last five weeks: 840 buckets per stage and campaign.</summary>
    public static readonly TimeSpan Hours = TimeSpan.FromDays(35);

    public static TimeSpan Kept(ThroughputResolution resolution) => resolution == ThroughputResolution.Minute ? Minutes : Hours;

    public static TimeSpan Step(ThroughputResolution resolution) => resolution == ThroughputResolution.Minute ? TimeSpan.FromMinutes(1) : TimeSpan.FromHours(1);

    public static DateTimeOffset BucketOf(ThroughputResolution resolution, DateTimeOffset at)
    {
        var step = Step(resolution).Ticks;
        var utc = at.UtcTicks;
        return new DateTimeOffset(utc - (utc % step), TimeSpan.Zero);
    }

    /// <summary>The first bucket still kept when the bucket holding <paramref name="now"/> is being written.</summary>
    public static DateTimeOffset OldestKept(ThroughputResolution resolution, DateTimeOffset now) =>
        BucketOf(resolution, now) - Kept(resolution) + Step(resolution);
}

/// <summary>What one stage finished for one campaign in one bucket (a minute or an hour, starting <paramref name="At"/>).</summary>
public sealed record StageActivity(string Stage, string Campaign, DateTimeOffset At, long Files, long Bytes);

/// <summary>The concern's store among the backend's, by name.</summary>
public static class ActivityLogAccess
{
    extension(StoreBackend backend)
    {
        public IActivityLog Activity => backend.Get<IActivityLog>();
    }
}
