using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>A campaign's files counted by how far they got, at one moment.</summary>
public sealed record CampaignProgress(DateTimeOffset At, long Registered, long Staged, long Reconstructed, long Merged, long Archived, long Failed, long Cancelled)
{
    private static readonly IReadOnlyList<string> PastStaging = FileStates.StagedOrLater;
    private static readonly string[] PastReconstruction = [FileStates.Reconstructed, FileStates.Merged, FileStates.Archived];
    private static readonly string[] PastMerge = [FileStates.Merged, FileStates.Archived];

    public static CampaignProgress From(string campaign, IEnumerable<StateCount> counts, DateTimeOffset at)
    {
        var mine = counts.Where(c => c.Campaign == campaign).ToDictionary(c => c.State, c => c.Files, StringComparer.Ordinal);
        long Sum(IEnumerable<string> states) => states.Sum(s => mine.GetValueOrDefault(s));
        return new CampaignProgress(at, mine.Values.Sum(), Sum(PastStaging), Sum(PastReconstruction), Sum(PastMerge),
            mine.GetValueOrDefault(FileStates.Archived), mine.GetValueOrDefault(FileStates.Failed), mine.GetValueOrDefault(FileStates.Cancelled));
    }

    /// <summary>Files past each stage, by stage, in the order a file passes them.</summary>
    public IReadOnlyList<(string Stage, long Past)> PastStages =>
        [("staging", Staged), ("reconstruction", Reconstructed), ("merge", Merged), ("archive", Archived)];
}

/// <summary>One stage's pace in a campaign: how many files still have to pass it, and how fast they did lately.</summary>
public sealed record StageForecast(string Stage, long Remaining, double FilesPerMinute, double? MinutesLeft);

/// <summary>
/// Where a campaign stands and when it will be done, from measured rates: each stage's remaining files over its
/// rate in the recent window; the stage that needs longest is the bottleneck, and sets the estimated completion.
/// </summary>
public sealed record CampaignForecast(
    long Files,
    long Done,
    long Failed,
    long Cancelled,
    long Remaining,
    IReadOnlyList<StageForecast> Stages,
    string? Bottleneck,
    DateTimeOffset? EstimatedCompletion,
    double WindowMinutes)
{
    /// <summary>
    /// Forecasts from the oldest and newest progress samples (the window); <paramref name="expected"/> is the number of
    /// files the campaign will have in all (0 when unknown, as for a prompt campaign, whose files arrive with runs).
    /// </summary>
    public static CampaignForecast From(long expected, IReadOnlyList<CampaignProgress> samples)
    {
        var now = samples[^1];
        var first = samples[0];
        var files = Math.Max(expected, now.Registered);
        var ended = now.Failed + now.Cancelled;
        var minutes = (now.At - first.At).TotalMinutes;
        var stages = new List<StageForecast>();
        for (var i = 0; i < now.PastStages.Count; i++)
        {
            var (stage, past) = now.PastStages[i];
            var remaining = Math.Max(0, files - past - ended);
            // A retry sends a file back before a stage, so a count can fall: a window never counts less than nothing.
            var rate = minutes > 0 ? Math.Max(0, past - first.PastStages[i].Past) / minutes : 0;
            double? left = remaining == 0 ? 0 : rate > 0 ? remaining / rate : null;
            stages.Add(new StageForecast(stage, remaining, Math.Round(rate, 3), left is { } l ? Math.Round(l, 2) : null));
        }
        var open = stages.Where(s => s.Remaining > 0).ToList();
        // The stage that needs longest holds the campaign back; a stage with work and no measured pace holds it back most.
        var bottleneck = open.OrderByDescending(s => s.MinutesLeft ?? double.PositiveInfinity).FirstOrDefault();
        DateTimeOffset? completion = open.Count == 0 ? now.At
            : open.All(s => s.MinutesLeft is not null) ? now.At.AddMinutes(open.Max(s => s.MinutesLeft!.Value)) : null;
        return new CampaignForecast(files, now.Archived, now.Failed, now.Cancelled, Math.Max(0, files - now.Archived - ended),
            stages, bottleneck?.Stage, completion, Math.Round(minutes, 2));
    }
}
