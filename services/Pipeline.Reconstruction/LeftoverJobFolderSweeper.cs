using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Jobs;

namespace Pipeline.Reconstruction;

/// <summary>
/// Clears what killed jobs leave in this host's scratch. A job's folder (<c>jobs/campaign/runNNNNNN/file/attempt-N/execution</c>)
/// empties as its worker ships its logs and outputs; one whose worker died mid-job, or whose logs could not be copied,
/// would stay for ever. Once the file is final (archived, failed or cancelled) and the folder untouched for
/// <see cref="CollectorOptions.LeftoverAfterSeconds"/>, its logs are copied (under the attempt's log folder, in a
/// folder named for the execution) and the rest removed. Scratch is this host's alone, so every reconstruction service
/// sweeps its own.
/// </summary>
public sealed class LeftoverJobFolderSweeper(StorageAreas areas, IFileStates fileStates, IOptions<CollectorOptions> options, TimeProvider time, ILogger<LeftoverJobFolderSweeper> logger)
    : PeriodicWork(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.LeftoverSweepSeconds);

    protected override string What => "Sweeping leftover job folders";

    protected override bool PassAtStart => false;

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SweepAsync(stoppingToken);

    /// <summary>Returns how many job folders were cleared.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var jobs = areas.Scratch.PathOf(JobFolders.Root);
        if (!Directory.Exists(jobs))
        {
            return 0;
        }
        var before = Time.GetUtcNow().UtcDateTime - TimeSpan.FromSeconds(options.Value.LeftoverAfterSeconds);
        // jobs/{campaign}/run{NNNNNN}/{file id}/attempt-{N}/{execution}, untouched for a while
        var untouched = new List<(string Execution, Guid FileId, int Attempt, int Files)>();
        foreach (var execution in Directory.EnumerateDirectories(jobs, "*", SearchOption.AllDirectories)
                     .Select(path => Path.GetRelativePath(areas.Scratch.RootPath, path).Replace(Path.DirectorySeparatorChar, '/'))
                     .Where(name => name.Split('/').Length == JobFolders.AttemptDepth + 1)
                     .ToList())
        {
            if (!JobFolders.TryParse(execution, out var fileId, out var attempt))
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
        var final = await fileStates.FindFinalAsync(untouched.Select(job => job.FileId), cancellationToken);
        var cleared = 0;
        foreach (var (execution, fileId, attempt, files) in untouched)
        {
            if (!final.TryGetValue(fileId, out var file))
            {
                continue;
            }
            // The logs of a job that never reported are worth keeping: they say how far it got.
            var folder = $"{JobLogFolders.Of(file.Campaign, file.Run, file.Stream, fileId, attempt)}/leftover-{execution.Split('/')[5]}";
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
