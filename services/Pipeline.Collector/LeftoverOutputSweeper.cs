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
/// (archived, failed or cancelled), whatever is in its folder and untouched for <see cref="CollectorOptions.LeftoverAfterSeconds"/>
/// is removed, its room given back, and the emptied folders with it. A pass reads one level per run and looks into the
/// folders of final files only: its cost follows the files still there, not every file the area ever held (a storage
/// server keeps a folder after its last file goes, and listing each through the server is a process of its own).
/// </summary>
public sealed class LeftoverOutputSweeper(
    StorageAreas areas, IFileStates fileStates, AreaGate gate, IOptions<CollectorOptions> options, TimeProvider time, ILogger<LeftoverOutputSweeper> logger)
    : PeriodicWork(time, logger)
{
    /// <summary>File folders whose files' states are asked for at once: a run's listing is read as it comes, never held whole.</summary>
    public const int UnmergedChunk = 500;

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.LeftoverSweepSeconds);

    protected override string What => "Sweeping leftover outputs";

    protected override bool PassAtStart => false;

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SweepAsync(stoppingToken);

    /// <summary>Returns how many outputs were cleared.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var before = Time.GetUtcNow() - TimeSpan.FromSeconds(options.Value.LeftoverAfterSeconds);
        var cleared = 0;
        await foreach (var campaign in areas.Unmerged.ListFolderAsync(JobFolders.Root, cancellationToken))
        {
            if (!campaign.IsFolder)
            {
                continue;
            }
            await foreach (var run in areas.Unmerged.ListFolderAsync(campaign.Name, cancellationToken))
            {
                if (run.IsFolder)
                {
                    cleared += await SweepRunAsync(run.Name, before, cancellationToken);
                }
            }
        }
        return cleared;
    }

    private async Task<int> SweepRunAsync(string run, DateTimeOffset before, CancellationToken cancellationToken)
    {
        var files = new List<(string Folder, Guid FileId)>(UnmergedChunk);
        var cleared = 0;
        var empty = true;
        await foreach (var entry in areas.Unmerged.ListFolderAsync(run, cancellationToken))
        {
            empty = false;
            if (entry.IsFolder && JobFolders.TryParseFileFolder(entry.Name, out var fileId))
            {
                files.Add((entry.Name, fileId));
                if (files.Count == UnmergedChunk)
                {
                    cleared += await ClearFinalFilesAsync(files, before, cancellationToken);
                    files.Clear();
                }
            }
        }
        cleared += await ClearFinalFilesAsync(files, before, cancellationToken);
        // A run folder whose files' folders all went (on an earlier pass) goes too.
        if (empty)
        {
            await areas.Unmerged.DeleteEmptyFolderAsync(run, cancellationToken);
        }
        return cleared;
    }

    private async Task<int> ClearFinalFilesAsync(IReadOnlyList<(string Folder, Guid FileId)> files, DateTimeOffset before, CancellationToken cancellationToken)
    {
        if (files.Count == 0)
        {
            return 0;
        }
        var final = await fileStates.FindFinalAsync(files.Select(f => f.FileId), cancellationToken);
        var cleared = 0;
        foreach (var (folder, fileId) in files.Where(f => final.ContainsKey(f.FileId)))
        {
            cleared += (await ClearFolderAsync(folder, fileId, final[fileId].State, before, cancellationToken)).Cleared;
        }
        return cleared;
    }

    /// <summary>Removes what is in a final file's folder and untouched since <paramref name="before"/>, then the folder if nothing is left in it.</summary>
    private async Task<(int Cleared, bool Emptied)> ClearFolderAsync(string folder, Guid fileId, string state, DateTimeOffset before, CancellationToken cancellationToken)
    {
        var cleared = 0;
        var kept = false;
        await foreach (var entry in areas.Unmerged.ListFolderAsync(folder, cancellationToken))
        {
            if (entry.IsFolder)
            {
                var (below, emptied) = await ClearFolderAsync(entry.Name, fileId, state, before, cancellationToken);
                cleared += below;
                kept |= !emptied;
            }
            else if (entry.Modified <= before)
            {
                await areas.Unmerged.DeleteAsync(entry.Name, cancellationToken);
                await gate.ReleaseAsync(StorageOptions.Unmerged, entry.Name);
                cleared++;
                Logger.LogWarning("Removed the leftover output {Name} of {FileId} ({State}) from the unmerged area", entry.Name, fileId, state);
            }
            else
            {
                // Written lately (a superseded job still copying): looked at again on a later pass.
                kept = true;
            }
        }
        return (cleared, !kept && await areas.Unmerged.DeleteEmptyFolderAsync(folder, cancellationToken));
    }
}
