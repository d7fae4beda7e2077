using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Monitor;

/// <summary>
/// Deletes what writes killed half-way leave behind: a file is written under a temporary name and renamed when
/// complete, so a temporary file that nobody has written to for a while can never become a file of the pipeline.
/// Complete files are never touched here.
/// </summary>
public sealed class TemporaryFileSweeper(StorageAreas areas, IOptions<MonitorOptions> options, TimeProvider time, ILogger<TemporaryFileSweeper> logger)
    : PeriodicWork(time, logger)
{
    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.TemporarySweepSeconds);

    protected override string What => "Sweeping abandoned temporary files";

    protected override Task RunOnceAsync(CancellationToken stoppingToken)
    {
        Sweep();
        return Task.CompletedTask;
    }

    /// <summary>Returns how many abandoned temporary files were deleted.</summary>
    public int Sweep()
    {
        var before = Time.GetUtcNow().UtcDateTime - TimeSpan.FromSeconds(options.Value.AbandonedTemporarySeconds);
        var deleted = 0;
        foreach (var area in areas.All.Where(a => Directory.Exists(a.RootPath)))
        {
            foreach (var path in Directory.EnumerateFiles(area.RootPath, "*" + StorageArea.TemporaryMarker + "*", SearchOption.AllDirectories))
            {
                var file = new FileInfo(path);
                if (!file.Exists || file.LastWriteTimeUtc > before)
                {
                    continue;
                }
                try
                {
                    file.Delete();
                    deleted++;
                    Logger.LogWarning("Deleted abandoned temporary file {Path} in {Area} ({Bytes} bytes, last written {LastWrite:O})", path, area.Name, file.Length, file.LastWriteTimeUtc);
                }
                catch (FileNotFoundException)
                {
                    // Renamed into place or removed meanwhile.
                }
            }
        }
        return deleted;
    }
}
