using System.Diagnostics;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Merger;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Infrastructure;

public class When_copying_with_the_next_read_under_way
{
    private const int Buffer = StreamingCopy.BufferSize;

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(Buffer - 1)]
    [InlineData(Buffer)]
    [InlineData(Buffer + 1)]
    [InlineData((3 * Buffer) + 17)]
    public async Task Should_write_every_byte_in_order_with_its_checksum(int length)
    {
        using var folder = new TempDirectory();
        var area = new LocalArea("cache", new Uri(folder.Path));
        var data = new byte[length];
        new Random(length).NextBytes(data);

        // Short, uneven reads, as from a pipe or a throttled archive.
        var (size, adler) = await area.WriteFromAsync("f.bin", new UnevenReads(data, seed: 5), null, CancellationToken.None);

        Assert.Equal(length, size);
        Assert.Equal(Adler32Checksum.Of(data), adler);
        Assert.Equal(data, await File.ReadAllBytesAsync(area.PathOf("f.bin")));
    }

    [Fact]
    public async Task Should_let_the_read_under_way_end_before_giving_up_when_a_write_fails()
    {
        var source = new UnevenReads(new byte[5 * Buffer], seed: 1) { ReadDelay = TimeSpan.FromMilliseconds(20) };
        var target = new FailingWrites(failOnWrite: 2);

        await Assert.ThrowsAsync<IOException>(() => StreamingCopy.CopyOverlappedAsync(source, target, CancellationToken.None));

        // The buffer of a read still running would go back to the pool while the read fills it.
        Assert.Equal(0, source.ReadsInFlight);
        Assert.True(source.Reads >= 2);
    }
}

public class When_writing_through_a_write_behind_buffer
{
    [Fact]
    public async Task Should_hand_the_bytes_on_in_order_in_full_buffers_and_the_rest_at_flush()
    {
        var inner = new RecordingWrites();
        var data = new byte[(10 * 4096) + 123];
        new Random(3).NextBytes(data);
        var random = new Random(4);

        await using (var stream = new WriteBehindStream(inner, bufferSize: 4096))
        {
            for (var at = 0; at < data.Length;)
            {
                // Pieces smaller and larger than the buffer.
                var piece = Math.Min(random.Next(1, 9000), data.Length - at);
                await stream.WriteAsync(data.AsMemory(at, piece));
                at += piece;
            }
            await stream.FlushAsync();
            Assert.Equal(data.Length, stream.Length);
        }

        Assert.Equal(data, inner.Bytes.ToArray());
        Assert.All(inner.WriteSizes.SkipLast(1), size => Assert.Equal(4096, size));
        Assert.Equal(123, inner.WriteSizes[^1]);
        Assert.Equal(1, inner.Flushes);
    }

    [Fact]
    public async Task Should_go_on_taking_bytes_while_the_full_buffer_is_written_and_wait_only_for_the_next()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var inner = new RecordingWrites { Gate = release.Task };
        await using var stream = new WriteBehindStream(inner, bufferSize: 1000);

        // The first full buffer goes to the inner stream, which is held; the writer is not.
        await stream.WriteAsync(new byte[1500]);
        Assert.Equal(1500, stream.Length);

        // The second full buffer must wait for the first to be written.
        var second = stream.WriteAsync(new byte[600]).AsTask();
        await Task.Delay(50);
        Assert.False(second.IsCompleted);

        release.SetResult();
        await second;
        await stream.FlushAsync();
        Assert.Equal([1000, 1000, 100], inner.WriteSizes);
    }

    [Fact]
    public async Task Should_report_a_failed_background_write_and_write_no_more_when_disposed_unflushed()
    {
        var inner = new FailingWrites(failOnWrite: 1);
        var stream = new WriteBehindStream(inner, bufferSize: 100);

        await stream.WriteAsync(new byte[150]);
        await Assert.ThrowsAsync<IOException>(() => stream.FlushAsync());

        var unflushed = new RecordingWrites();
        await using (var abandoned = new WriteBehindStream(unflushed, bufferSize: 100))
        {
            await abandoned.WriteAsync(new byte[250]);
        }
        // Two full buffers went on as they filled; the 50 bytes left were never asked to be written.
        Assert.Equal([100, 100], unflushed.WriteSizes);
        await stream.DisposeAsync();
    }
}

public class When_reading_a_file_once
{
    [Fact]
    public async Task Should_read_the_same_bytes_as_a_plain_read()
    {
        using var folder = new TempDirectory();
        var area = new LocalArea("scratch", new Uri(folder.Path));
        var data = new byte[(9 << 20) + 5];
        new Random(9).NextBytes(data);
        await File.WriteAllBytesAsync(area.PathOf("f.bin"), data);

        await using var stream = area.OpenReadOnce("f.bin");
        var copy = new MemoryStream();
        await stream.CopyToAsync(copy, 300_000);

        Assert.Equal(data, copy.ToArray());
        Assert.Equal(((long)data.Length, Adler32Checksum.Of(data)), await area.ChecksumAsync("f.bin", CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_leave_none_of_the_file_in_the_page_cache()
    {
        using var folder = new TempDirectory();
        var area = await FlushedFileAsync(folder);
        await using (var plain = area.OpenRead("f.bin"))
        {
            await plain.CopyToAsync(Stream.Null);
        }
        var cachedAfterPlainRead = await ResidentBytesAsync(area.PathOf("f.bin"));
        Skip.If(cachedAfterPlainRead == 0, "this filesystem keeps no read pages in the cache");

        await using (var once = area.OpenReadOnce("f.bin"))
        {
            await once.CopyToAsync(Stream.Null, StreamingCopy.BufferSize);
        }

        Assert.Equal(0, await ResidentBytesAsync(area.PathOf("f.bin")));
    }

    [SkippableFact]
    public async Task Should_let_go_of_a_flushed_files_pages_so_that_the_next_read_is_from_the_disk()
    {
        using var folder = new TempDirectory();
        var area = await FlushedFileAsync(folder);
        Skip.If(await ResidentBytesAsync(area.PathOf("f.bin")) == 0, "this filesystem keeps no written pages in the cache");

        area.LetGoOfCachedPages("f.bin");

        Assert.Equal(0, await ResidentBytesAsync(area.PathOf("f.bin")));
    }

    /// <summary>A 16 MiB file written and flushed to disk, in an area where the page cache can be looked at (else the test is skipped).</summary>
    private static async Task<StorageArea> FlushedFileAsync(TempDirectory folder)
    {
        Skip.If(new DriveInfo(folder.Path).DriveFormat is "tmpfs" or "ramfs", "the temporary folder is in memory, where a file's pages are the file itself");
        Skip.If(!File.Exists("/usr/bin/fincore"), "fincore (util-linux) is not installed, so the page cache cannot be looked at");
        var area = new LocalArea("scratch", new Uri(folder.Path));
        var data = new byte[16 << 20];
        new Random(2).NextBytes(data);
        await using var file = new FileStream(area.PathOf("f.bin"), FileMode.CreateNew);
        await file.WriteAsync(data);
        file.Flush(flushToDisk: true);
        return area;
    }

    private static async Task<long> ResidentBytesAsync(string path)
    {
        var start = new ProcessStartInfo("fincore") { RedirectStandardOutput = true, ArgumentList = { "--bytes", "--noheadings", "--output", "RES", path } };
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        Assert.Equal(0, process.ExitCode);
        return long.Parse(output.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }
}

/// <summary>A source that returns short reads of varying length, and counts the reads running at once.</summary>
internal sealed class UnevenReads(byte[] data, int seed) : Stream
{
    private readonly Random _random = new(seed);
    private int _position;
    private int _inFlight;

    public TimeSpan ReadDelay { get; init; }
    public int ReadsInFlight => Volatile.Read(ref _inFlight);
    public int Reads { get; private set; }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _inFlight);
        try
        {
            Reads++;
            if (ReadDelay > TimeSpan.Zero)
            {
                await Task.Delay(ReadDelay, cancellationToken);
            }
            var count = Math.Min(Math.Min(buffer.Length, _random.Next(1, 700_000)), data.Length - _position);
            data.AsMemory(_position, count).CopyTo(buffer);
            _position += count;
            return count;
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
        }
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => data.Length;
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>A target that keeps what it is given and the size of each write; a write can be held at a gate.</summary>
internal sealed class RecordingWrites : Stream
{
    public MemoryStream Bytes { get; } = new();
    public List<int> WriteSizes { get; } = [];
    public int Flushes { get; private set; }
    public Task Gate { get; init; } = Task.CompletedTask;

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await Gate;
        lock (WriteSizes)
        {
            WriteSizes.Add(buffer.Length);
            Bytes.Write(buffer.Span);
        }
    }

    public override Task FlushAsync(CancellationToken cancellationToken)
    {
        Flushes++;
        return Task.CompletedTask;
    }

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => Bytes.Length;
    public override long Position { get => Bytes.Length; set => throw new NotSupportedException(); }
    public override void Flush() => Flushes++;
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>A target whose n-th write fails, as a disk that went away.</summary>
internal sealed class FailingWrites(int failOnWrite) : Stream
{
    private int _writes;

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
        ++_writes == failOnWrite ? ValueTask.FromException(new IOException("the disk went away")) : ValueTask.CompletedTask;

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => 0;
    public override long Position { get => 0; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
