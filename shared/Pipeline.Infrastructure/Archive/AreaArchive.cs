using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Infrastructure.Storage.Xrootd;

namespace Pipeline.Infrastructure.Archive;

/// <summary>
/// An archive held in a storage area: directly for a disk archive (a folder, or an XRootD or WebDAV endpoint), or, for
/// a folder, behind a simulated tape library whose drives add mounts, positioning and a sequential rate.
/// </summary>
public sealed class AreaArchive : IArchive
{
    private readonly StorageArea _area;
    private readonly TapeDrives? _tape;
    private long _thirdPartyCopies;
    private long _thirdPartyFallbacks;

    public AreaArchive(StorageArea area, TapeDrives? tape)
    {
        if (tape is not null && area is not LocalArea)
        {
            throw new ArgumentException($"Archive '{area.Name}': the simulated tape library keeps its volumes in a folder; {area.Location.Scheme}:// is not one.");
        }
        _area = area;
        _tape = tape;
    }

    public string Name => _area.Name;

    public StorageArea Area => _area;

    public TapeDrives? Tape => _tape;

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken) => _area.ExistsAsync(name, cancellationToken);

    public TapeLocation? Locate(string name)
    {
        if (_tape is null || _area is not LocalArea folder)
        {
            return null;
        }
        var slash = name.LastIndexOf('/');
        var volume = slash < 0 ? "" : name[..slash];
        var path = slash < 0 ? folder.RootPath : folder.PathOf(volume);
        var position = Directory.Exists(path)
            ? Directory.EnumerateFiles(path).Select(Path.GetFileName).OfType<string>()
                .Where(f => !f.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal))
                .Count(f => string.CompareOrdinal(f, name[(slash + 1)..]) < 0)
            : 0;
        return new TapeLocation(volume, position);
    }

    public Task<(long Size, uint Adler32)> ReadIntoAsync(string name, StorageArea target, string targetName, CancellationToken cancellationToken)
    {
        if (_tape is null || _area is not LocalArea folder)
        {
            return StreamingCopy.CopyAsync(_area, name, target, targetName, cancellationToken);
        }
        var length = folder.SizeOf(name);
        return _tape.ReadAsync(Locate(name)!, rate => StreamingCopy.CopyAsync(
            _ => Task.FromResult<Stream>(new ThrottledStream(folder.OpenReadOnce(name), rate)), target, targetName, length, cancellationToken), cancellationToken);
    }

    public async Task WriteAsync(string name, StorageArea source, string sourceName, long size, string adler32, CancellationToken cancellationToken)
    {
        (long Size, uint Adler32) written;
        if (_tape is null)
        {
            written = await CopyAsync(name, source, sourceName, adler32, cancellationToken);
        }
        else
        {
            var location = Locate(name)!;
            // A new file goes after what the volume holds already.
            written = await _tape.WriteAsync(location, rate => StreamingCopy.CopyAsync(
                async token => new ThrottledStream(await source.OpenReadAsync(sourceName, token), rate), _area, name, size, cancellationToken), cancellationToken);
        }
        await VerifyAsync(name, size, adler32, written, "while copying", cancellationToken);
        if (_area is LocalArea folder)
        {
            // Read back what the archive holds: the copy is trusted only once its own bytes check out, as read from
            // the disk (the copy's pages in memory are let go first; reading those would check the copy against itself).
            folder.LetGoOfCachedPages(name);
            await VerifyAsync(name, size, adler32, await folder.ChecksumAsync(name, cancellationToken), "reading it back", cancellationToken);
        }
        else
        {
            // A remote endpoint computes the checksum of what it holds itself: the upload compared it already, and
            // it is asked once more for the file under its final name.
            var stored = await _area.StatAsync(name, cancellationToken);
            var reported = stored?.StoredAdler32 is { } digest && Adler32Checksum.TryParse(digest, out var value) ? value : 0;
            await VerifyAsync(name, size, adler32, (stored?.Size ?? -1, reported), "as the endpoint reports it", cancellationToken);
        }
    }

    /// <summary>Copies made server to server (third-party), and copies streamed through this host between two XRootD areas because that failed.</summary>
    public long ThirdPartyCopies => Interlocked.Read(ref _thirdPartyCopies);

    public long ThirdPartyFallbacks => Interlocked.Read(ref _thirdPartyFallbacks);

    /// <summary>
    /// Between two XRootD areas the copy goes server to server, so a second archive copy's bytes need not pass through
    /// this host; where the servers cannot copy between themselves (no <c>ofs.tpc</c>), the bytes stream through here,
    /// checksummed as they pass. Either way the destination's checksum is compared with the catalog's.
    /// </summary>
    private async Task<(long Size, uint Adler32)> CopyAsync(string name, StorageArea source, string sourceName, string adler32, CancellationToken cancellationToken)
    {
        try
        {
            return await CopyComparedAsync(name, source, sourceName, adler32, cancellationToken);
        }
        catch (Exception ex) when (ex is InvalidDataException or RemoteChecksumMismatchException)
        {
            // Compared before the copy took its name, so nothing is left to delete: a failed verification like any other.
            throw new ArchiveException($"Copy of {name} in {_area.Name} failed verification while copying: {ex.Message}", ex);
        }
    }

    private async Task<(long Size, uint Adler32)> CopyComparedAsync(string name, StorageArea source, string sourceName, string adler32, CancellationToken cancellationToken)
    {
        if (source is XrootdArea from && _area is XrootdArea to)
        {
            try
            {
                var copied = await to.CopyFromAsync(from, sourceName, name, adler32, cancellationToken);
                Interlocked.Increment(ref _thirdPartyCopies);
                return copied;
            }
            catch (RemoteStorageException)
            {
                // A checksum that differs is not this (RemoteChecksumMismatchException): the stream below would copy the same bytes.
                Interlocked.Increment(ref _thirdPartyFallbacks);
            }
        }
        return await StreamingCopy.CopyAsync(source, sourceName, _area, name, cancellationToken, adler32);
    }

    private async Task VerifyAsync(string name, long size, string adler32, (long Size, uint Adler32) found, string when, CancellationToken cancellationToken)
    {
        if (found.Size != size || !Adler32Checksum.Same(Adler32Checksum.Format(found.Adler32), adler32))
        {
            await _area.DeleteAsync(name, cancellationToken);
            throw new ArchiveException(
                $"Copy of {name} in {_area.Name} failed verification {when}: expected {size} bytes adler32 {adler32}, found {found.Size} bytes adler32 {Adler32Checksum.Format(found.Adler32)}.");
        }
    }
}

/// <summary>
/// The drives of a simulated tape library. A transfer takes a free drive, preferring one that has the volume
/// mounted; mounting another volume costs the mount time, reading anything but the next file on the volume
/// costs the positioning time, and bytes move at the drive's rate. Counts what it does, for the demo and metrics.
/// </summary>
public sealed class TapeDrives
{
    private readonly TapeOptions _options;
    private readonly Action? _mounted;
    private readonly Drive[] _drives;
    private readonly SemaphoreSlim _free;
    private readonly Lock _gate = new();
    private long _tick;
    private long _mounts;
    private long _readMounts;
    private long _filesRead;
    private long _filesWritten;

    public TapeDrives(string library, TapeOptions options, Action? mounted = null)
    {
        Library = library;
        _options = options;
        _mounted = mounted;
        _drives = [.. Enumerable.Range(0, options.Drives).Select(_ => new Drive())];
        _free = new SemaphoreSlim(options.Drives, options.Drives);
    }

    public string Library { get; }

    public long Mounts => Interlocked.Read(ref _mounts);

    /// <summary>Mounts made to read (stage-in), as opposed to write.</summary>
    public long ReadMounts => Interlocked.Read(ref _readMounts);

    public long FilesRead => Interlocked.Read(ref _filesRead);

    public long FilesWritten => Interlocked.Read(ref _filesWritten);

    /// <summary>The volume each drive holds now (null when empty).</summary>
    public IReadOnlyList<string?> Mounted
    {
        get
        {
            lock (_gate)
            {
                return [.. _drives.Select(d => d.Volume)];
            }
        }
    }

    private double BytesPerSecond => _options.MegabytesPerSecond <= 0 ? 0 : _options.MegabytesPerSecond * 1e6;

    public async Task<T> ReadAsync<T>(TapeLocation at, Func<double, Task<T>> transfer, CancellationToken cancellationToken)
    {
        var result = await UseAsync(at, transfer, reading: true, cancellationToken);
        Interlocked.Increment(ref _filesRead);
        return result;
    }

    public async Task<T> WriteAsync<T>(TapeLocation at, Func<double, Task<T>> transfer, CancellationToken cancellationToken)
    {
        var result = await UseAsync(at, transfer, reading: false, cancellationToken);
        Interlocked.Increment(ref _filesWritten);
        return result;
    }

    private async Task<T> UseAsync<T>(TapeLocation at, Func<double, Task<T>> transfer, bool reading, CancellationToken cancellationToken)
    {
        await _free.WaitAsync(cancellationToken);
        Drive drive;
        bool mount, position;
        lock (_gate)
        {
            drive = _drives.Where(d => !d.Busy).OrderByDescending(d => d.Volume == at.Volume).ThenBy(d => d.LastUsed).First();
            drive.Busy = true;
            mount = drive.Volume != at.Volume;
            position = mount || drive.NextPosition != at.Position;
        }
        try
        {
            if (mount)
            {
                lock (_gate)
                {
                    drive.Volume = null;
                }
                await Delay(_options.MountSeconds, cancellationToken);
                Interlocked.Increment(ref _mounts);
                if (reading)
                {
                    Interlocked.Increment(ref _readMounts);
                }
                _mounted?.Invoke();
                lock (_gate)
                {
                    drive.Volume = at.Volume;
                }
            }
            if (position)
            {
                await Delay(_options.PositionSeconds, cancellationToken);
            }
            var result = await transfer(BytesPerSecond);
            drive.NextPosition = at.Position + 1;
            return result;
        }
        finally
        {
            lock (_gate)
            {
                drive.Busy = false;
                drive.LastUsed = ++_tick;
            }
            _free.Release();
        }
    }

    private static Task Delay(double seconds, CancellationToken cancellationToken) =>
        seconds > 0 ? Task.Delay(TimeSpan.FromSeconds(seconds), cancellationToken) : Task.CompletedTask;

    private sealed class Drive
    {
        public string? Volume { get; set; }

        public int NextPosition { get; set; } = -1;

        public bool Busy { get; set; }

        public long LastUsed { get; set; }
    }
}

/// <summary>Reads from a stream no faster than a given rate (a tape drive's): the simulated library's transfer speed.</summary>
public sealed class ThrottledStream(Stream inner, double bytesPerSecond) : ForwardReadStream(inner)
{
    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();
    private long _read;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await Inner.ReadAsync(buffer, cancellationToken);
        _read += read;
        if (bytesPerSecond > 0)
        {
            var due = TimeSpan.FromSeconds(_read / bytesPerSecond) - System.Diagnostics.Stopwatch.GetElapsedTime(_started);
            if (due > TimeSpan.FromMilliseconds(1))
            {
                await Task.Delay(due, cancellationToken);
            }
        }
        return read;
    }
}
