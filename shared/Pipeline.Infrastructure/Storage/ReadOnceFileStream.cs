namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// A file read once, front to back, by a stage that will not read it again (a copy's source, a merge's
/// input, a verification read). Behind the reader, each piece read is let go from the page cache
/// (<c>posix_fadvise DONTNEED</c>), so the pages the next write needs are the ones just freed instead of new
/// memory: moving a file costs the memory of a few pieces, not of the file, and a data mover does not push
/// the files other stages are still using out of the cache. Advice only: where the call is missing or
/// refused, the stream reads as any other.
/// </summary>
public sealed class ReadOnceFileStream : ForwardReadStream
{
    private const int PageSize = 4096;

    /// <summary>Pieces are let go in steps of at least this, so the advice is one call per few reads.</summary>
    private const long DropStep = 4 << 20;

    private readonly FileStream _file;
    private long _dropped;
    // Until the first refusal (or a system without the call): then the stream reads as any other.
    private bool _adviceWorks = true;

    public ReadOnceFileStream(string path)
        : this(Open(path))
    {
    }

    private ReadOnceFileStream(FileStream file)
        : base(file)
    {
        _file = file;
    }

    // No buffer of its own: readers here read in large pieces, or buffer above a checksum.
    private static FileStream Open(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0, FileOptions.SequentialScan | FileOptions.Asynchronous);

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var read = _file.Read(buffer);
        LetGoBehind(read == 0);
        return read;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await _file.ReadAsync(buffer, cancellationToken);
        LetGoBehind(read == 0);
        return read;
    }

    private void LetGoBehind(bool atEnd)
    {
        if (!_adviceWorks)
        {
            return;
        }
        // Whole pages only: a page partly read is let go with the next step (or at the end).
        var upTo = atEnd ? _file.Position : _file.Position / PageSize * PageSize;
        if (upTo - _dropped < DropStep && !(atEnd && upTo > _dropped))
        {
            return;
        }
        if (!PageCache.LetGo(_file.SafeFileHandle, _dropped, upTo - _dropped))
        {
            _adviceWorks = false;
            return;
        }
        _dropped = upTo;
    }
}
