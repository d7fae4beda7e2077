using System.Buffers.Binary;

namespace Pipeline.EventFormat;

/// <summary>
/// The event file layout: an 8-byte magic, then records of
/// [run:int32][section:int32][event:int64][trigger:uint32][length:int32][payload], little-endian.
/// There is no count in the header, so a writer never has to seek back.
/// </summary>
public static class EventFile
{
    public static ReadOnlySpan<byte> Magic => "PLEVT01\n"u8;

    public const int RecordHeaderSize = 24;

    /// <summary>Largest payload accepted, so a corrupt length cannot make a reader allocate gigabytes.</summary>
    public const int MaxPayload = 16 << 20;
}

/// <summary>Writes event records to a stream, in the order given.</summary>
public sealed class EventWriter : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly byte[] _header = new byte[EventFile.RecordHeaderSize];

    private EventWriter(Stream stream, bool leaveOpen)
    {
        _stream = stream;
        _leaveOpen = leaveOpen;
    }

    public long Events { get; private set; }

    public static async Task<EventWriter> CreateAsync(Stream stream, bool leaveOpen = false, CancellationToken cancellationToken = default)
    {
        await stream.WriteAsync(EventFile.Magic.ToArray(), cancellationToken);
        return new EventWriter(stream, leaveOpen);
    }

    public async ValueTask WriteAsync(EventRecord record, CancellationToken cancellationToken = default)
    {
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(0), record.Run);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(4), record.Section);
        BinaryPrimitives.WriteInt64LittleEndian(_header.AsSpan(8), record.Event);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(16), record.Trigger);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(20), record.Payload.Length);
        await _stream.WriteAsync(_header, cancellationToken);
        await _stream.WriteAsync(record.Payload, cancellationToken);
        Events++;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.FlushAsync();
        if (!_leaveOpen)
        {
            await _stream.DisposeAsync();
        }
    }
}

/// <summary>The stream is not an event file, or is cut short.</summary>
public sealed class EventFormatException(string message) : Exception(message);

/// <summary>
/// Reads event records one at a time. The payload of the current record is valid until the next
/// read: one buffer is reused, so memory stays flat however large the file.
/// </summary>
public sealed class EventReader : IAsyncDisposable
{
    private readonly Stream _stream;
    private readonly bool _leaveOpen;
    private readonly byte[] _header = new byte[EventFile.RecordHeaderSize];
    private byte[] _payload = new byte[4096];

    private EventReader(Stream stream, bool leaveOpen)
    {
        _stream = stream;
        _leaveOpen = leaveOpen;
    }

    public EventRecord Current { get; private set; }

    public long Events { get; private set; }

    public static async Task<EventReader> OpenAsync(Stream stream, bool leaveOpen = false, CancellationToken cancellationToken = default)
    {
        var magic = new byte[EventFile.Magic.Length];
        var read = await stream.ReadAtLeastAsync(magic, magic.Length, throwOnEndOfStream: false, cancellationToken);
        if (read != magic.Length || !magic.AsSpan().SequenceEqual(EventFile.Magic))
        {
            throw new EventFormatException("Not an event file: the magic bytes are missing.");
        }
        return new EventReader(stream, leaveOpen);
    }

    /// <summary>Advances to the next record; false at the end of the file.</summary>
    public async ValueTask<bool> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = await _stream.ReadAtLeastAsync(_header, _header.Length, throwOnEndOfStream: false, cancellationToken);
        if (read == 0)
        {
            return false;
        }
        if (read != _header.Length)
        {
            throw new EventFormatException($"Event file cut short after {Events} events (partial record header).");
        }
        var length = BinaryPrimitives.ReadInt32LittleEndian(_header.AsSpan(20));
        if (length < 0 || length > EventFile.MaxPayload)
        {
            throw new EventFormatException($"Event {Events} has an impossible payload length {length}.");
        }
        if (_payload.Length < length)
        {
            _payload = new byte[Math.Max(length, _payload.Length * 2)];
        }
        if (length > 0)
        {
            await _stream.ReadExactlyAsync(_payload.AsMemory(0, length), cancellationToken);
        }
        Current = new EventRecord(
            BinaryPrimitives.ReadInt32LittleEndian(_header.AsSpan(0)),
            BinaryPrimitives.ReadInt32LittleEndian(_header.AsSpan(4)),
            BinaryPrimitives.ReadInt64LittleEndian(_header.AsSpan(8)),
            BinaryPrimitives.ReadUInt32LittleEndian(_header.AsSpan(16)),
            _payload.AsMemory(0, length));
        Events++;
        return true;
    }

    public async IAsyncEnumerable<EventRecord> ReadAllAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        while (await ReadAsync(cancellationToken))
        {
            yield return Current;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_leaveOpen)
        {
            await _stream.DisposeAsync();
        }
    }
}
