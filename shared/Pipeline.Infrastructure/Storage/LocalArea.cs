using Pipeline.Infrastructure.Checksums;

namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// A storage area in a folder on this host (a file:// URI), or on a filesystem mounted here.
/// Writes land in a temporary file beside the target and become visible by an atomic rename,
/// so a reader never sees a half-written file. Besides the area operations every kind has, it offers the paths
/// of its files, for what a stage owns on its own host (a release's job folder) and for the local-only checks
/// (free space, the page cache).
/// </summary>
public sealed class LocalArea : StorageArea
{
    private readonly string _root;

    // The area's folder may itself be reached through a link (a mounted volume): links into it are inside too.
    private readonly Lazy<string> _realRoot;

    public LocalArea(string name, Uri location)
        : base(name, FolderOf(name, location))
    {
        // A folder's URL may end with '/' (as its Location does): the root never does, or no name would be inside it.
        _root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(location.LocalPath));
        Directory.CreateDirectory(_root);
        _realRoot = new Lazy<string>(() => new DirectoryInfo(_root).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? _root);
    }

    private static Uri FolderOf(string name, Uri location)
    {
        if (!location.IsFile)
        {
            throw new ArgumentException($"Storage area '{name}' must be a file:// URI, got '{location}'.", nameof(location));
        }
        var root = Path.GetFullPath(location.LocalPath);
        return new Uri(root.EndsWith('/') ? root : root + "/");
    }

    public override bool IsLocal => true;

    public string RootPath => _root;

    /// <summary>The absolute path of a file in this area; throws if the name could escape it.</summary>
    public string PathOf(string name)
    {
        var problem = AreaNames.Problem(name);
        if (problem is not null)
        {
            throw new ArgumentException($"File name '{name}' in area '{Name}' {problem}.", nameof(name));
        }
        var full = Path.GetFullPath(Path.Combine(_root, name));
        if (!full.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new ArgumentException($"File name '{name}' escapes area '{Name}'.", nameof(name));
        }
        return full;
    }

    public override Uri UriOf(string name) => new(PathOf(name));

    public bool Exists(string name) => File.Exists(PathOf(name));

    /// <summary>A file or a folder of that name is in the area.</summary>
    public bool Holds(string name) => File.Exists(PathOf(name)) || Directory.Exists(PathOf(name));

    public long SizeOf(string name) => new FileInfo(PathOf(name)).Length;

    public Stream OpenRead(string name) =>
        new FileStream(PathInside(name), FileMode.Open, FileAccess.Read, FileShare.Read, StreamingCopy.FileBufferSize, FileOptions.SequentialScan | FileOptions.Asynchronous);

    /// <summary>
    /// Lets go of a written and flushed file's pages in memory, so that the next read of it reads what the disk
    /// holds, not what the writer left in the page cache.
    /// </summary>
    public void LetGoOfCachedPages(string name) => PageCache.LetGo(PathInside(name));

    /// <summary>Opens a file a stage reads once, front to back, and not again: see <see cref="ReadOnceFileStream"/>.</summary>
    public Stream OpenReadOnce(string name) => new ReadOnceFileStream(PathInside(name));

    /// <summary>
    /// The path of a file that is really in this area: besides the name's own check, no folder or file on the way
    /// may be a symbolic link that leads out of the area (a link planted in an area must not let a read or a
    /// write reach /etc or another area). Throws <see cref="AreaEscapeException"/> for one that does.
    /// </summary>
    public string PathInside(string name)
    {
        var full = PathOf(name);
        var current = _root;
        foreach (var segment in Path.GetRelativePath(_root, full).Split(Path.DirectorySeparatorChar))
        {
            current = Path.Combine(current, segment);
            FileSystemInfo entry = Directory.Exists(current) ? new DirectoryInfo(current) : new FileInfo(current);
            if (!entry.Exists && entry.LinkTarget is null)
            {
                break;
            }
            if (entry.LinkTarget is not null && (entry.ResolveLinkTarget(returnFinalTarget: true) is not { } target || !IsInside(target.FullName)))
            {
                throw new AreaEscapeException($"File name '{name}' in area '{Name}' leads out of the area through the link '{Path.GetRelativePath(_root, current)}' -> '{entry.LinkTarget}'.");
            }
        }
        return full;
    }

    private bool IsInside(string path)
    {
        var root = _realRoot.Value;
        return path == _root || path.StartsWith(_root + Path.DirectorySeparatorChar, StringComparison.Ordinal)
            || path == root || path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    /// <summary>
    /// Writes a file through <paramref name="write"/> into a temporary name, computing Adler-32 as the
    /// bytes go, flushes it to disk and renames it into place. Returns the size and checksum written.
    /// </summary>
    public override async Task<(long Size, uint Adler32)> WriteAsync(string name, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var target = PathInside(name);
        var temporary = $"{target}{TemporaryMarker}{Guid.NewGuid():N}";
        try
        {
            long size;
            uint adler;
            await using (var file = CreateBesideTarget(temporary))
            {
                await using (var hashing = new ChecksummingStream(file, leaveOpen: true))
                {
                    await write(hashing, cancellationToken);
                    await hashing.FlushAsync(cancellationToken);
                    size = hashing.Length;
                    adler = hashing.Adler32;
                }
                file.Flush(flushToDisk: true);
            }
            File.Move(temporary, target, overwrite: true);
            return (size, adler);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    private static FileStream CreateBesideTarget(string temporary)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(temporary)!);
                return new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, StreamingCopy.FileBufferSize, FileOptions.Asynchronous);
            }
            catch (DirectoryNotFoundException) when (attempt < 3)
            {
                // A delete in this area removed the (then empty) folder between creating it and creating the file.
            }
        }
    }

    public override Task<(long Size, uint Adler32)> WriteFromAsync(string name, Stream source, long? length, CancellationToken cancellationToken) =>
        WriteAsync(name, (target, ct) => StreamingCopy.CopyOverlappedAsync(source, target, ct), cancellationToken);

    public override Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken) => Task.FromResult(OpenReadOnce(name));

    public override Task<StoredFile?> StatAsync(string name, CancellationToken cancellationToken)
    {
        var file = new FileInfo(PathOf(name));
        // A folder has no size: it is not a file of the area.
        return Task.FromResult(file.Exists ? new StoredFile(file.Length, null) : null);
    }

    public override Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var present = Exists(name);
        Delete(name);
        return Task.FromResult(present);
    }

    public override Task MoveAsync(string name, string newName, CancellationToken cancellationToken)
    {
        Move(name, newName);
        return Task.CompletedTask;
    }

    public override async IAsyncEnumerable<AreaEntry> ListAsync(string folder, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var start = folder.Length == 0 ? _root : PathOf(folder);
        if (!Directory.Exists(start))
        {
            yield break;
        }
        foreach (var path in Directory.EnumerateFiles(start, "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var file = new FileInfo(path);
            if (file.Exists)
            {
                yield return new AreaEntry(Path.GetRelativePath(_root, path).Replace(Path.DirectorySeparatorChar, '/'), file.Length, file.LastWriteTimeUtc);
            }
        }
        await Task.CompletedTask;
    }

    public override async IAsyncEnumerable<AreaEntry> ListFolderAsync(string folder, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var start = folder.Length == 0 ? _root : PathOf(folder);
        if (!Directory.Exists(start))
        {
            yield break;
        }
        foreach (var entry in new DirectoryInfo(start).EnumerateFileSystemInfos())
        {
            cancellationToken.ThrowIfCancellationRequested();
            var name = Path.GetRelativePath(_root, entry.FullName).Replace(Path.DirectorySeparatorChar, '/');
            yield return entry is FileInfo file ? new AreaEntry(name, file.Length, file.LastWriteTimeUtc) : new AreaEntry(name, 0, entry.LastWriteTimeUtc, IsFolder: true);
        }
        await Task.CompletedTask;
    }

    public override Task<bool> DeleteEmptyFolderAsync(string folder, CancellationToken cancellationToken)
    {
        try
        {
            Directory.Delete(PathOf(folder), recursive: false);
            return Task.FromResult(true);
        }
        catch (DirectoryNotFoundException)
        {
            return Task.FromResult(true);
        }
        catch (IOException)
        {
            // Something is still in it.
            return Task.FromResult(false);
        }
    }

    public void Delete(string name)
    {
        var path = PathOf(name);
        TryDelete(path);
        RemoveEmptyParents(Path.GetDirectoryName(path));
    }

    /// <summary>Moves a file to another name in the same area (a rename: never a copy), refusing to overwrite.</summary>
    public void Move(string name, string newName)
    {
        var from = PathOf(name);
        var to = PathOf(newName);
        Directory.CreateDirectory(Path.GetDirectoryName(to)!);
        File.Move(from, to, overwrite: false);
        RemoveEmptyParents(Path.GetDirectoryName(from));
    }

    public void DeleteDirectory(string name)
    {
        var path = PathOf(name);
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
        RemoveEmptyParents(Path.GetDirectoryName(path));
    }

    private void RemoveEmptyParents(string? directory)
    {
        while (directory is not null && directory.Length > _root.Length && directory.StartsWith(_root, StringComparison.Ordinal))
        {
            try
            {
                if (Directory.EnumerateFileSystemEntries(directory).Any())
                {
                    return;
                }
                Directory.Delete(directory);
            }
            catch (IOException)
            {
                // Another writer just created something here: the directory is in use, keep it.
                return;
            }
            directory = Path.GetDirectoryName(directory);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // Best effort: a leftover temporary file never becomes visible under the real name.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}

/// <summary>A name that is well formed but reaches outside its area through a symbolic link.</summary>
public sealed class AreaEscapeException(string message) : IOException(message);
