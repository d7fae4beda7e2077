using System.Globalization;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;

namespace Pipeline.Collector;

/// <summary>
/// Clears what killed jobs leave in scratch. A job's folder (<c>jobs/campaign/runNNNNNN/file/attempt-N/execution</c>)
/// normally empties as its logs are collected and its outputs merged and archived; one whose worker died mid-job, or
/// whose outputs a later attempt superseded, would stay for ever. Once the file is final (archived, failed or
/// cancelled) and the folder untouched for <see cref="CollectorOptions.LeftoverAfterSeconds"/>, its logs are collected
/// (under the attempt's log folder, in a folder named for the execution) and the rest removed. The same goes for
/// outputs in the unmerged area under the same names: those of an attempt a later one superseded, of a job stopped
/// while it copied them, or whose removal failed with the storage server down.
/// </summary>
public sealed class LeftoverJobSweeper(
    StorageAreas areas, IFileStates fileStates, AreaGate gate, IOptions<CollectorOptions> options, TimeProvider time, ILogger<LeftoverJobSweeper> logger)
    : PeriodicWork(time, logger)
{
    public const string JobsFolder = "jobs";

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.LeftoverSweepSeconds);

    protected override string What => "Sweeping leftover job folders";

    protected override bool PassAtStart => false;

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SweepAsync(stoppingToken);

    /// <summary>Unmerged outputs whose files' states are asked for at once: the listing is read as it comes, never held whole.</summary>
    public const int UnmergedChunk = 500;

    /// <summary>Returns how many job folders and unmerged outputs were cleared.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken) =>
        await SweepScratchAsync(cancellationToken) + await SweepUnmergedAsync(cancellationToken);

    /// <summary>The file id in a job's name (<c>jobs/campaign/runNNNNNN/file/…</c>), if it is one.</summary>
    private static Guid? FileIdOf(string name)
    {
        var parts = name.Split('/');
        return parts.Length > 4 && parts[0] == JobsFolder && Guid.TryParseExact(parts[3], "N", out var fileId) ? fileId : null;
    }

    private async Task<int> SweepUnmergedAsync(CancellationToken cancellationToken)
    {
        var before = Time.GetUtcNow() - TimeSpan.FromSeconds(options.Value.LeftoverAfterSeconds);
        var untouched = new List<(string Name, Guid FileId)>(UnmergedChunk);
        var cleared = 0;
        await foreach (var entry in areas.Unmerged.ListAsync(JobsFolder, cancellationToken))
        {
            if (entry.Modified <= before && !entry.Name.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal) && FileIdOf(entry.Name) is { } fileId)
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
        var final = (await fileStates.FindAsync(untouched.Select(o => o.FileId).Distinct().ToList(), cancellationToken))
            .Where(file => file.Final)
            .ToDictionary(file => file.FileId);
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

    private async Task<int> SweepScratchAsync(CancellationToken cancellationToken)
    {
        var jobs = areas.Scratch.PathOf(JobsFolder);
        if (!Directory.Exists(jobs))
        {
            return 0;
        }
        var before = Time.GetUtcNow().UtcDateTime - TimeSpan.FromSeconds(options.Value.LeftoverAfterSeconds);
        // jobs/{campaign}/run{NNNNNN}/{file id}/attempt-{N}/{execution}, untouched for a while
        var untouched = new List<(string Execution, Guid FileId, int Attempt, int Files)>();
        foreach (var execution in Directory.EnumerateDirectories(jobs, "*", SearchOption.AllDirectories)
                     .Select(path => Path.GetRelativePath(areas.Scratch.RootPath, path).Replace(Path.DirectorySeparatorChar, '/'))
                     .Where(name => name.Split('/').Length == 6)
                     .ToList())
        {
            var parts = execution.Split('/');
            if (!Guid.TryParseExact(parts[3], "N", out var fileId) || !parts[4].StartsWith("attempt-", StringComparison.Ordinal)
                || !int.TryParse(parts[4]["attempt-".Length..], CultureInfo.InvariantCulture, out var attempt))
            {
                continue;
            }
            var path = areas.Scratch.PathOf(execution);
            var files = Directory.Exists(path) ? Directory.EnumerateFiles(path, "*", SearchOption.AllDirectories).ToList() : [];
            if (files.Any(f => File.GetLastWriteTimeUtc(f) > before) || Directory.GetLastWriteTimeUtc(path) > before)
            {
                continue;
            }
            untouched.Add((execution, fileId, attempt, files.Count));
        }
        if (untouched.Count == 0)
        {
            return 0;
        }
        // Only a file that nothing more will happen to gives up its folders; the orchestrator, which owns the files'
        // state, is asked. No answer (the orchestrator down) fails this pass and the next one asks again.
        var final = (await fileStates.FindAsync(untouched.Select(job => job.FileId).Distinct().ToList(), cancellationToken))
            .Where(file => file.Final)
            .ToDictionary(file => file.FileId);
        var cleared = 0;
        foreach (var (execution, fileId, attempt, files) in untouched)
        {
            if (!final.TryGetValue(fileId, out var file))
            {
                continue;
            }
            // The logs of a job that never reported are worth keeping: they say how far it got.
            var folder = $"{CollectJobLogsConsumer.LogFolder(file.Campaign, file.Run, file.Stream, fileId, attempt)}/leftover-{execution.Split('/')[5]}";
            foreach (var log in Directory.EnumerateFiles(areas.Scratch.PathOf(execution)).Select(Path.GetFileName).OfType<string>())
            {
                await StreamingCopy.CopyAsync(areas.Scratch, $"{execution}/{log}", areas.Logs, $"{folder}/{log}", cancellationToken);
            }
            areas.Scratch.DeleteDirectory(execution);
            cleared++;
            Logger.LogWarning("Cleared the leftover job folder {Folder} of {FileId} ({State}): {Files} files, logs kept in {LogFolder}",
                execution, fileId, file.State, files, folder);
        }
        return cleared;
    }
}
