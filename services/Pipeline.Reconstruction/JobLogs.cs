using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Jobs;

namespace Pipeline.Reconstruction;

/// <summary>
/// A finished job's logs and histograms (the files at the top of its folder) leave this host for the logs area: each
/// is checksummed in the job's folder, copied under the attempt's log folder (compared with that checksum before it
/// takes its name there) and removed from scratch. The collector then checks them against what the logs area holds.
/// </summary>
public sealed class JobLogs(StorageAreas areas, ILogger<JobLogs> logger)
{
    /// <summary>The files copied, with their size and Adler-32; one that could not be copied stays for the leftover sweep.</summary>
    public async Task<IReadOnlyList<JobLogFile>> ShipAsync(ReconstructFile message, string jobDirectory, CancellationToken cancellationToken)
    {
        var folder = JobLogFolders.Of(message.Campaign, message.Run, message.Stream, message.FileId, message.Attempt);
        var shipped = new List<JobLogFile>();
        foreach (var file in Directory.EnumerateFiles(areas.Scratch.PathOf(jobDirectory)).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal))
        {
            var source = $"{jobDirectory}/{file}";
            try
            {
                var (size, adler) = await areas.Scratch.ChecksumAsync(source, cancellationToken);
                var adler32 = Adler32Checksum.Format(adler);
                await StreamingCopy.CopyAsync(areas.Scratch, source, areas.Logs, $"{folder}/{file}", cancellationToken, adler32);
                areas.Scratch.Delete(source);
                shipped.Add(new JobLogFile(file, size, adler32));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The job's result does not wait on its logs: the leftover sweep copies what stayed once the file is done.
                logger.LogWarning(ex, "Could not copy {Log} of {FileId} attempt {Attempt} into the logs area ({Area}); it stays in the job's folder for the leftover sweep",
                    file, message.FileId, message.Attempt, areas.Logs.Location);
            }
        }
        return shipped;
    }
}
