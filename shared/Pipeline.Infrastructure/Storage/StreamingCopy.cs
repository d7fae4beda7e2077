using System.Buffers;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage.Http;
using Polly;
using Polly.Retry;

namespace Pipeline.Infrastructure.Storage;

/// <summary>Buffer size and retry policy shared by every data path.</summary>
public static class StreamingCopy
{
    /// <summary>Copy buffer: large enough for sequential disk throughput; rented from the shared pool, never kept.</summary>
    public const int BufferSize = 1 << 20;

    /// <summary>
    /// The buffer a file stream keeps for itself. Below the large-object threshold, so a stream's buffer
    /// dies young with it instead of piling up until a full collection: memory stays flat over many files.
    /// </summary>
    public const int FileBufferSize = 64 << 10;

    /// <summary>
    /// Retries transient I/O errors (a flaky mount, a busy file) with backoff. A missing file or a
    /// checksum mismatch is not transient and is not retried here.
    /// </summary>
    public static ResiliencePipeline TransientIo { get; } = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder()
                .Handle<IOException>(ex => ex is not FileNotFoundException and not DirectoryNotFoundException and not RemoteChecksumMismatchException),
            MaxRetryAttempts = 3,
            Delay = TimeSpan.FromMilliseconds(200),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
        })
        .Build();

    /// <summary>
    /// Copies a file from one area to another (atomically at the target), checksumming while the bytes
    /// move, retrying transient I/O errors from the start. The bytes pass through this process: a copy between
    /// two remote areas streams from one server to the other without landing on this host's disk.
    /// <paramref name="expectedAdler32"/>, when the caller knows it (the catalog's, a job's output as it was checksummed),
    /// is compared before the copy takes its final name: with the server's when a local file goes to an XRootD server,
    /// with the bytes as they were written otherwise. A bad copy never appears under its name, not even for the moment a
    /// tape endpoint needs to migrate it; it fails with <see cref="InvalidDataException"/>, which is not retried.
    /// </summary>
    public static async Task<(long Size, uint Adler32)> CopyAsync(StorageArea from, string fromName, StorageArea to, string toName, CancellationToken cancellationToken,
        string? expectedAdler32 = null)
    {
        if (from is LocalArea folder && to is Xrootd.XrootdArea xrootd)
        {
            return await TransientIo.ExecuteAsync(token => new ValueTask<(long, uint)>(xrootd.UploadFileAsync(toName, folder.PathInside(fromName), token, expectedAdler32)), cancellationToken);
        }
        var length = (await from.StatAsync(fromName, cancellationToken))?.Size
            ?? throw new FileNotFoundException($"'{fromName}' is not in area '{from.Name}'.");
        return await CopyAsync(token => from.OpenReadAsync(fromName, token), to, toName, length, cancellationToken, expectedAdler32);
    }

    /// <summary>Copies what <paramref name="open"/> opens (anew on every retry) into an area, checksumming while the bytes move.</summary>
    public static Task<(long Size, uint Adler32)> CopyAsync(Func<CancellationToken, Task<Stream>> open, StorageArea to, string toName, long? length, CancellationToken cancellationToken,
        string? expectedAdler32 = null) =>
        TransientIo.ExecuteAsync(async token =>
        {
            await using var source = await open(token);
            if (expectedAdler32 is null)
            {
                return await to.WriteFromAsync(toName, source, length, token);
            }
            // Checked inside the write, so a mismatch fails it before the rename: the area drops its temporary file.
            return await to.WriteAsync(toName, async (target, writing) =>
            {
                await using var counted = new ChecksummingStream(target, leaveOpen: true);
                await CopyOverlappedAsync(source, counted, writing);
                await counted.FlushAsync(writing);
                if (!Adler32Checksum.Same(Adler32Checksum.Format(counted.Adler32), expectedAdler32))
                {
                    throw new InvalidDataException(
                        $"Copying to {to.Name}/{toName} read adler32 {Adler32Checksum.Format(counted.Adler32)} ({counted.Length} bytes), expected {expectedAdler32}: the source is not the file it was recorded as (changed or corrupted); the copy was not kept.");
                }
            }, token);
        }, cancellationToken).AsTask();

    /// <summary>
    /// Copies <paramref name="source"/> to <paramref name="target"/> with the next chunk's read under way while
    /// the current chunk is checksummed and written: on a fast disk or a warm page cache the copy then costs the
    /// slower of reading and writing, not their sum (a plain CopyToAsync waits for each in turn).
    /// </summary>
    public static async Task CopyOverlappedAsync(Stream source, Stream target, CancellationToken cancellationToken)
    {
        var current = ArrayPool<byte>.Shared.Rent(BufferSize);
        var next = ArrayPool<byte>.Shared.Rent(BufferSize);
        var reading = source.ReadAsync(current.AsMemory(0, BufferSize), cancellationToken).AsTask();
        try
        {
            while (true)
            {
                var read = await reading;
                if (read == 0)
                {
                    return;
                }
                reading = source.ReadAsync(next.AsMemory(0, BufferSize), cancellationToken).AsTask();
                await target.WriteAsync(current.AsMemory(0, read), cancellationToken);
                (current, next) = (next, current);
            }
        }
        finally
        {
            // The read under way when a write failed still uses its buffer: let it end before the buffer goes back.
            await ((Task)reading).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            ArrayPool<byte>.Shared.Return(current);
            ArrayPool<byte>.Shared.Return(next);
        }
    }
}
