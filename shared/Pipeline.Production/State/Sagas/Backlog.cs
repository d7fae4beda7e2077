using Pipeline.Infrastructure.Telemetry;

namespace Pipeline.Production.State;

/// <summary>
/// What each scalable stage has to do, from the store: the numbers its workers scale on. The broker's queues cannot
/// tell: staged files wait in the store until the dispatcher gives them a slot, and merge inputs wait there for
/// their dataset's file to fill, so the queues stay short however much work waits.
/// </summary>
public static class Backlog
{
    /// <summary>The file states that are each stage's work, waiting or in hand; the archive's work is merged files.</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlyList<string>> StatesOf = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal)
    {
        // Stage-in requests: registered files (their calibration there) and those being staged.
        [PipelineMetrics.Staging] = [FileStates.Registered, FileStates.Staging],
        // Staged and waiting for a slot, queued for a worker, or being reconstructed.
        [PipelineMetrics.Reconstruction] = [FileStates.Staged, FileStates.Queued, FileStates.Reconstructing],
        // Reconstructed, their outputs waiting to be merged.
        [PipelineMetrics.Merge] = [FileStates.Reconstructed],
    };

    /// <summary>Every scalable stage's backlog for every campaign named, 0 where it has none.</summary>
    public static IReadOnlyList<StageBacklog> Of(IEnumerable<string> campaigns, IReadOnlyList<StateCount> counts, IReadOnlyDictionary<string, int> unarchived)
    {
        var names = campaigns.Concat(counts.Select(c => c.Campaign)).Concat(unarchived.Keys).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        var backlog = new List<StageBacklog>();
        foreach (var campaign in names)
        {
            foreach (var (stage, states) in StatesOf)
            {
                backlog.Add(new StageBacklog(stage, campaign, counts.Where(c => c.Campaign == campaign && states.Contains(c.State)).Sum(c => c.Files)));
            }
            backlog.Add(new StageBacklog(PipelineMetrics.Archive, campaign, unarchived.GetValueOrDefault(campaign)));
        }
        return backlog;
    }
}
