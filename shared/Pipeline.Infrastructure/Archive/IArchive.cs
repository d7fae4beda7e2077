using Pipeline.Infrastructure.Storage;

namespace Pipeline.Infrastructure.Archive;

/// <summary>
/// An archive area: where raw files are read from and merged files are written to. Every implementation
/// verifies what it moves (size and Adler-32) and throws <see cref="ArchiveException"/> with the reason when it cannot.
/// </summary>
public interface IArchive
{
    string Name { get; }

    /// <summary>The storage area the archive's files are in, when they are in one (not behind a copy tool).</summary>
    StorageArea? Area => null;

    Task<bool> ExistsAsync(string name, CancellationToken cancellationToken);

    /// <summary>Where a file sits on tape (volume and position on it), or null when the area is not a tape library.</summary>
    TapeLocation? Locate(string name);

    /// <summary>Copies an archived file into a storage area, checksumming as the bytes arrive.</summary>
    Task<(long Size, uint Adler32)> ReadIntoAsync(string name, StorageArea target, string targetName, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a file from a storage area into the archive and verifies that the archive holds exactly
    /// <paramref name="size"/> bytes with checksum <paramref name="adler32"/>; a copy that does not verify is removed.
    /// </summary>
    Task WriteAsync(string name, StorageArea source, string sourceName, long size, string adler32, CancellationToken cancellationToken);

    /// <summary>
    /// Asks for those of the files that are on tape only to be brought online, in the order given, and returns them with
    /// how long each may take. Nothing for an archive that is not nearline: its files are always online.
    /// </summary>
    Task<IReadOnlyList<Recall>> RecallAsync(IReadOnlyList<string> names, CancellationToken cancellationToken) =>
        Task.FromResult<IReadOnlyList<Recall>>([]);

    /// <summary>Waits until a recalled file is online; <see cref="ArchiveException"/> once its deadline passes.</summary>
    Task WaitOnlineAsync(Recall recall, CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Whether a file written is on tape, as the endpoint says. Always for an archive that is not nearline.</summary>
    Task<Migration> MigrationOfAsync(string name, long size, string adler32, CancellationToken cancellationToken) => Task.FromResult(Migration.Done);
}

/// <summary>A file asked to be brought online from tape: by when it must be, and how many files were queued ahead of it.</summary>
public sealed record Recall(string Name, DateTimeOffset Deadline, int QueuedAhead);

/// <summary>Whether a file written to an archive is on tape; when it cannot become so as it stands, why.</summary>
public sealed record Migration(bool OnTape, string? Problem)
{
    public static readonly Migration Done = new(true, null);
}

/// <summary>A file's place in a tape library: its volume, and its position on the volume.</summary>
public sealed record TapeLocation(string Volume, int Position);

/// <summary>An archive could not read or write a file, for the reason given (after its own retries).</summary>
public sealed class ArchiveException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The archive areas of this deployment, by name.</summary>
public sealed class ArchiveLibrary(IEnumerable<IArchive> archives)
{
    private readonly Dictionary<string, IArchive> _archives = archives.ToDictionary(a => a.Name, StringComparer.Ordinal);

    public IArchive this[string name] =>
        _archives.TryGetValue(name, out var archive)
            ? archive
            : throw new KeyNotFoundException($"No archive area named '{name}' is configured.");

    /// <summary>The archive raw files are read from, and the first copy of every merged file.</summary>
    public IArchive Primary => this[StorageOptions.Archive];

    public IEnumerable<IArchive> All => _archives.Values;

    public bool Contains(string name) => _archives.ContainsKey(name);

    /// <summary>The simulated tape libraries among them (for the demo's and the dashboard's tape figures).</summary>
    public IEnumerable<TapeDrives> TapeLibraries => _archives.Values.OfType<AreaArchive>().Select(a => a.Tape).OfType<TapeDrives>();

    /// <summary>The archives in front of an endpoint's tape.</summary>
    public IEnumerable<NearlineArchive> Nearline => _archives.Values.OfType<NearlineArchive>();
}
