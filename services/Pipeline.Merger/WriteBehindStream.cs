using System.Buffers;

namespace Pipeline.Merger;

/// <summary>
/// Gathers many small writes into large ones and hands each full buffer to the inner stream in the
/// background while the next one fills: a writer that produces bytes piece by piece (a merge, one event at
/// a time) keeps producing while the previous buffer is checksummed and written, instead of waiting for it.
/// Two buffers, so memory is bounded whatever the file's size.
/// Write-only and forward-only. Bytes reach the inner stream only through <see cref="FlushAsync(CancellationToken)"/>
/// or a full buffer; disposing does not flush, so a writer that failed half-way writes nothing more.
/// </summary>
public sealed class WriteBehindStream : Stream
{
    private readonly Stream _inner;
    private readonly int _bufferSize;
    private byte[] _filling;
    private byte[] _draining;
    private int _filled;
    private long _length;
    private Task _drain = Task.CompletedTask;
    private bool _disposed;

    public WriteBehindStream(Stream inner, int bufferSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bufferSize);
        _inner = inner;
        _bufferSize = bufferSize;
        _filling = ArrayPool<byte>.Shared.Rent(bufferSize);
        _draining = ArrayPool<byte>.Shared.Rent(bufferSize);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_disposed;
    public override long Length => _length;

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException("A write-behind stream only moves forward.");
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        // The common case, a piece that fits, completes at once without an asynchronous state machine.
        if (buffer.Length < _bufferSize - _filled)
        {
            buffer.Span.CopyTo(_filling.AsSpan(_filled));
            _filled += buffer.Length;
            _length += buffer.Length;
            return ValueTask.CompletedTask;
        }
        return WriteSlowAsync(buffer, cancellationToken);
    }

    private async ValueTask WriteSlowAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        while (!buffer.IsEmpty)
        {
            var count = Math.Min(buffer.Length, _bufferSize - _filled);
            buffer.Span[..count].CopyTo(_filling.AsSpan(_filled));
            _filled += count;
            _length += count;
            buffer = buffer[count..];
            if (_filled == _bufferSize)
            {
                await HandOverAsync(cancellationToken);
            }
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer) =>
        WriteAsync(buffer.ToArray(), CancellationToken.None).AsTask().GetAwaiter().GetResult();

    /// <summary>Waits for the buffer being written, then starts writing the full one in the background.</summary>
    private async Task HandOverAsync(CancellationToken cancellationToken)
    {
        await _drain;
        (_filling, _draining) = (_draining, _filling);
        var count = _filled;
        _filled = 0;
        var draining = _draining;
        _drain = Task.Run(async () => await _inner.WriteAsync(draining.AsMemory(0, count), cancellationToken), cancellationToken);
    }

    /// <summary>Writes everything written so far to the inner stream and flushes it.</summary>
    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        await _drain;
        if (_filled > 0)
        {
            await _inner.WriteAsync(_filling.AsMemory(0, _filled), cancellationToken);
            _filled = 0;
        }
        await _inner.FlushAsync(cancellationToken);
    }

    public override void Flush() => FlushAsync(CancellationToken.None).GetAwaiter().GetResult();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        // A background write still uses its buffer; let it end (its failure was or will be seen by the writer) before the buffers go back.
        await _drain.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        ArrayPool<byte>.Shared.Return(_filling);
        ArrayPool<byte>.Shared.Return(_draining);
        await base.DisposeAsync();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _drain.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing).GetAwaiter().GetResult();
            ArrayPool<byte>.Shared.Return(_filling);
            ArrayPool<byte>.Shared.Return(_draining);
        }
        base.Dispose(disposing);
    }
}
