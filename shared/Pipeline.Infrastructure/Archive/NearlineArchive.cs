using System.Collections.Concurrent;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Infrastructure.Archive;

/// <summary>
/// An archive on an endpoint in front of tape, driven through the endpoint's own protocol: files that are on tape only
/// are asked for with a prepare request and waited for, and a file written counts as archived only once the endpoint
/// reports its tape copy, of the same size and Adler-32. Reads and writes themselves go through the area like any disk
/// archive's (<see cref="AreaArchive"/>).
/// </summary>
public sealed class NearlineArchive : IArchive
{
    private readonly AreaArchive _disk;
    private readonly INearlineArea _endpoint;
    private readonly NearlineOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, DateTimeOffset> _recalling = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _migrated = new(StringComparer.Ordinal);
    private long _recallsRequested;
    private long _recallsCompleted;

    public NearlineArchive(StorageArea area, NearlineOptions options, TimeProvider time)
    {
        _endpoint = area as INearlineArea
            ?? throw new ArgumentException($"Archive '{area.Name}': a nearline archive is driven through its endpoint's tape protocol; {area.Location.Scheme}:// areas do not speak one here (root:// does).");
        _disk = new AreaArchive(area, null);
        _options = options;
        _time = time;
    }

    public string Name => _disk.Name;

    public StorageArea Area => _disk.Area;

    public NearlineOptions Options => _options;

    /// <summary>Files asked to be brought online from tape.</summary>
    public long RecallsRequested => Interlocked.Read(ref _recallsRequested);

    /// <summary>Files asked for that came online.</summary>
    public long RecallsCompleted => Interlocked.Read(ref _recallsCompleted);

    /// <summary>Files written whose tape copy the endpoint confirmed.</summary>
    public long MigrationsConfirmed => _migrated.Count;

    public Task<bool> ExistsAsync(string name, CancellationToken cancellationToken) => _disk.ExistsAsync(name, cancellationToken);

    /// <summary>Files of one folder share a volume, as the endpoint's tape system is told; their order on it is the endpoint's.</summary>
    public TapeLocation? Locate(string name)
    {
        var slash = name.LastIndexOf('/');
        return new TapeLocation(slash < 0 ? "" : name[..slash], 0);
    }

    public async Task<(long Size, uint Adler32)> ReadIntoAsync(string name, StorageArea target, string targetName, CancellationToken cancellationToken)
    {
        // A reader that did not ask first (an audit, a reconciliation) still never reads a file that is on tape only.
        foreach (var recall in await RecallAsync([name], cancellationToken))
        {
            await WaitOnlineAsync(recall, cancellationToken);
        }
        return await _disk.ReadIntoAsync(name, target, targetName, cancellationToken);
    }

    public Task WriteAsync(string name, StorageArea source, string sourceName, long size, string adler32, CancellationToken cancellationToken) =>
        _disk.WriteAsync(name, source, sourceName, size, adler32, cancellationToken);

    public async Task<IReadOnlyList<Recall>> RecallAsync(IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        var offline = new List<string>();
        foreach (var name in names)
        {
            if (await _endpoint.ResidencyAsync(name, cancellationToken) is { Online: false })
            {
                offline.Add(name);
            }
        }
        if (offline.Count == 0)
        {
            return [];
        }
        await _endpoint.RequestOnlineAsync(offline, cancellationToken);
        Interlocked.Add(ref _recallsRequested, offline.Count);
        // The wait a file is given grows with the recalls in front of it: this request's earlier files and what is
        // still waiting from before. A fixed limit would fail files behind a long queue, or wait too long on a short one.
        var ahead = _recalling.Count;
        var now = _time.GetUtcNow();
        var recalls = offline.Select((name, index) => new Recall(name,
            now.AddSeconds(_options.RecallFloorSeconds + (_options.RecallSecondsPerFile * (ahead + index + 1))), ahead + index)).ToList();
        foreach (var recall in recalls)
        {
            _recalling[recall.Name] = recall.Deadline;
        }
        return recalls;
    }

    public async Task WaitOnlineAsync(Recall recall, CancellationToken cancellationToken)
    {
        var askedAt = _time.GetUtcNow();
        string? lastProblem = null;
        try
        {
            while (true)
            {
                try
                {
                    var residency = await _endpoint.ResidencyAsync(recall.Name, cancellationToken)
                        ?? throw new ArchiveException($"{recall.Name} is no longer in archive {Name} while it was recalled from tape.");
                    if (residency.Online)
                    {
                        Interlocked.Increment(ref _recallsCompleted);
                        return;
                    }
                    lastProblem = null;
                }
                catch (IOException ex)
                {
                    // The endpoint restarting is a pause in the wait, not the recall's end: it is asked again below.
                    lastProblem = ex.Message;
                }
                var now = _time.GetUtcNow();
                if (now > recall.Deadline)
                {
                    throw new ArchiveException($"{recall.Name} was not brought online from tape in archive {Name} within {(recall.Deadline - askedAt).TotalSeconds:F0} s "
                        + $"({recall.QueuedAhead} files were queued ahead of it){(lastProblem is null ? "" : $"; last answer: {lastProblem}")}.");
                }
                if (now - askedAt > TimeSpan.FromSeconds(_options.RecallRepeatSeconds) && lastProblem is null)
                {
                    // An endpoint that restarted may have lost its queue; asking again for a file on its way is harmless.
                    await _endpoint.RequestOnlineAsync([recall.Name], cancellationToken);
                    askedAt = now;
                }
                await Task.Delay(TimeSpan.FromSeconds(_options.PollSeconds), _time, cancellationToken);
            }
        }
        finally
        {
            _recalling.TryRemove(recall.Name, out _);
        }
    }

    public async Task<Migration> MigrationOfAsync(string name, long size, string adler32, CancellationToken cancellationToken)
    {
        var residency = await _endpoint.ResidencyAsync(name, cancellationToken);
        if (residency?.OnTape is not { } copy)
        {
            return new Migration(false, residency is null ? $"{name} is not in archive {Name}" : null);
        }
        if ((copy.Size is { } taped && taped != size) || (copy.Adler32 is { } digest && !Adler32Checksum.Same(digest, adler32)))
        {
            return new Migration(false, $"the tape copy of {name} the endpoint reports has {copy.Size} bytes adler32 {copy.Adler32}, not {size} bytes adler32 {adler32}");
        }
        _migrated.TryAdd(name, true);
        return Migration.Done;
    }
}
