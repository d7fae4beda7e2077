using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Reconstruction;

/// <summary>
/// A reconstruction job's input: the staged copy in the cache, checked once more before the release reads it. The job
/// never removes it: only the file's saga knows whether another attempt reads the same copy (one given the file after
/// this job's lease ran out), and it has the stager give the copy back once nobody will.
/// </summary>
public sealed class JobInputs(StorageAreas areas, IOptions<ReconstructionOptions> options)
{
    /// <summary>The folder in a job's folder where an input from a remote cache is fetched to; it goes when the release ends.</summary>
    public const string FetchedFolder = "input";

    /// <summary>
    /// The path the release reads its input from, or why it cannot run. The copy was verified while it was staged;
    /// bytes at rest can still change (a bad disk, a bad cable, a bad neighbour), and a release given a corrupt input
    /// makes wrong outputs with good checksums, so the copy is checked once more before the release reads it; a bad
    /// one fails the attempt, and the next is staged anew. A cache on a remote endpoint is fetched into the job's
    /// folder (checked on the way in); a cache in a folder of this host is read where it is.
    /// </summary>
    public async Task<(string Path, string? Problem)> PrepareAsync(ReconstructFile message, string jobPath, CancellationToken cancellationToken)
    {
        if (message.CachedName is not { } cached)
        {
            return ("", null);
        }
        if (!await areas.Cache.ExistsAsync(cached, cancellationToken))
        {
            return ("", $"staged input {cached} is missing from the cache");
        }
        string path;
        long size;
        uint adler;
        if (areas.Cache is LocalArea folder)
        {
            path = folder.PathOf(cached);
            if (message.InputAdler32 is null || !options.Value.VerifyInput)
            {
                return (path, null);
            }
            (size, adler) = await folder.ChecksumAsync(cached, cancellationToken);
        }
        else
        {
            path = Path.Combine(jobPath, FetchedFolder, cached[(cached.LastIndexOf('/') + 1)..]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var source = await areas.Cache.OpenReadAsync(cached, cancellationToken);
            await using var target = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, StreamingCopy.FileBufferSize, FileOptions.Asynchronous);
            await using var counted = new ChecksummingStream(target, leaveOpen: true);
            await StreamingCopy.CopyOverlappedAsync(source, counted, cancellationToken);
            (size, adler) = (counted.Length, counted.Adler32);
            if (message.InputAdler32 is null)
            {
                return (path, null);
            }
        }
        return size == message.InputSize && Adler32Checksum.Same(Adler32Checksum.Format(adler), message.InputAdler32)
            ? (path, null)
            : (path, $"staged input {cached} is corrupt: catalogued {message.InputSize} bytes adler32 {message.InputAdler32}, cache holds {size} bytes adler32 {Adler32Checksum.Format(adler)}");
    }

    /// <summary>Removes an input fetched into the job's folder: it is the cache's copy, not the job's, and is not kept with the job's logs.</summary>
    public static void RemoveFetched(string jobPath)
    {
        var fetched = Path.Combine(jobPath, FetchedFolder);
        if (Directory.Exists(fetched))
        {
            Directory.Delete(fetched, recursive: true);
        }
    }
}
