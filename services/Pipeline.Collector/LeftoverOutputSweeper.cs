using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.Jobs;

namespace Pipeline.Collector;

/// <summary>
/// Clears reconstruction outputs left in the unmerged area (named as in the job's folder,
/// <c>jobs/campaign/runNNNNNN/file/attempt-N/execution/out/…</c>): those of an attempt a later one superseded, of a job
/// stopped while it copied them, or whose removal failed with the storage server down. Once the file is final
/// (archived, failed or cancelled) and the output untouched for <see cref="CollectorOptions.LeftoverAfterSeconds"/>, it
/// is removed and its room given back.
/// </summary>
public sealed class LeftoverOutputSweeper(
    StorageAreas areas, IFileStates fileStates, AreaGate gate, IOptions<CollectorOptions> options, TimeProvider time, ILogger<LeftoverOutputSweeper> logger)
    : PeriodicWork(time, logger)
{
    /// <summary>Unmerged outputs whose files' states are asked for at once: the listing is read as it comes, never held whole.</summary>
    public const int UnmergedChunk = 500;

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.LeftoverSweepSeconds);

    protected override string What => "Sweeping leftover outputs";

    protected override bool PassAtStart => false;

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SweepAsync(stoppingToken);

    /// <summary>Returns how many outputs were cleared.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var before = Time.GetUtcNow() - TimeSpan.FromSeconds(options.Value.LeftoverAfterSeconds);
        var untouched = new List<(string Name, Guid FileId)>(UnmergedChunk);
        var cleared = 0;
        await foreach (var entry in areas.Unmerged.ListAsync(JobFolders.Root, cancellationToken))
        {
            if (entry.Modified <= before && !entry.Name.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal) && JobFolders.TryParse(entry.Name, out var fileId, out _))
            {
                untouched.Add((entry.Name, fileId));
                if (untouched.Count == UnmergedChunk)
                {
                    cleared += await ClearOutputsOfFinalFilesAsync(untouched, cancellationToken);
                    untouched.Clear();
                }
            }
        }
        return cleared + await ClearOutputsOfFinalFilesAsync(untouched, cancellationToken);
    }

    private async Task<int> ClearOutputsOfFinalFilesAsync(IReadOnlyList<(string Name, Guid FileId)> untouched, CancellationToken cancellationToken)
    {
        if (untouched.Count == 0)
        {
            return 0;
        }
        var final = await fileStates.FindFinalAsync(untouched.Select(o => o.FileId), cancellationToken);
        var cleared = 0;
        foreach (var (name, fileId) in untouched.Where(o => final.ContainsKey(o.FileId)))
        {
            await areas.Unmerged.DeleteAsync(name, cancellationToken);
            await gate.ReleaseAsync(StorageOptions.Unmerged, name);
            cleared++;
            Logger.LogWarning("Removed the leftover output {Name} of {FileId} ({State}) from the unmerged area", name, fileId, final[fileId].State);
        }
        return cleared;
    }
}
