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

    protected override async Task RunOnceAsync(CancellationToken stoppingToken) => await SweepAsync(stoppingToken);

    private DateTimeOffset _remoteSweptAt = DateTimeOffset.MinValue;

    /// <summary>Returns how many abandoned temporary files were deleted: in folders on every pass, on storage servers every <see cref="MonitorOptions.RemoteTemporarySweepSeconds"/>.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var now = Time.GetUtcNow();
        var before = now - TimeSpan.FromSeconds(options.Value.AbandonedTemporarySeconds);
        var remoteToo = now - _remoteSweptAt >= TimeSpan.FromSeconds(options.Value.RemoteTemporarySweepSeconds);
        if (remoteToo)
        {
            _remoteSweptAt = now;
        }
        var deleted = 0;
        foreach (var area in areas.All.Where(a => a.IsLocal || remoteToo))
        {
            var abandoned = new List<AreaEntry>();
            await foreach (var file in area.ListAsync("", cancellationToken))
            {
                if (file.Name.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal) && file.Modified <= before)
                {
                    abandoned.Add(file);
                }
            }
            foreach (var file in abandoned)
            {
                // False when it was renamed into place or removed meanwhile.
                if (await area.DeleteAsync(file.Name, cancellationToken))
                {
                    deleted++;
                    Logger.LogWarning("Deleted abandoned temporary file {Name} in {Area} ({Bytes} bytes, last written {LastWrite:O})", file.Name, area.Name, file.Size, file.Modified);
                }
            }
        }
        return deleted;
    }
}
