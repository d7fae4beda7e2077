using System.Runtime.CompilerServices;
using Pipeline.Infrastructure.Checksums;

namespace Pipeline.Infrastructure.Storage;

/// <summary>A file as its area describes it: its size, and the Adler-32 the storage itself computed when it keeps one.</summary>
public sealed record StoredFile(long Size, string? StoredAdler32);

/// <summary>A file found by listing an area: its name in the area, size and last change.</summary>
public sealed record AreaEntry(string Name, long Size, DateTimeOffset Modified, bool IsFolder = false);

/// <summary>
/// A named storage area (archive, cache, scratch, output, logs) at a URL whose scheme says what kind it is: a folder
/// on this host (<c>file://</c>), an HTTP/WebDAV server (<c>https://</c>, <c>davs://</c>, <c>http://</c>) or an XRootD
/// server (<c>root://</c>). Stages read and write areas only through this class; every kind writes under a temporary
/// name and moves the file into place once it is complete and verified, so a reader never sees a half-written file
/// under a real name.
/// </summary>
public abstract class StorageArea
{
    /// <summary>What the name of a file being written carries until it is complete and moved into place.</summary>
    public const string TemporaryMarker = ".part-";

    protected StorageArea(string name, Uri location)
    {
        Name = name;
        Location = location;
    }

    public string Name { get; }

    /// <summary>Where the area is; never carries a credential.</summary>
    public Uri Location { get; }

    /// <summary>The area is a folder on this host (its files have paths: see <see cref="LocalArea"/>).</summary>
    public virtual bool IsLocal => false;

    /// <summary>The URL of a file in this area; throws if the name is not a safe name inside it.</summary>
    public abstract Uri UriOf(string name);

    /// <summary>The file's size and stored checksum, or null when there is no such file.</summary>
    public abstract Task<StoredFile?> StatAsync(string name, CancellationToken cancellationToken);

    public async Task<bool> ExistsAsync(string name, CancellationToken cancellationToken) =>
        await StatAsync(name, cancellationToken) is not null;

    /// <summary>Opens a file to be read once, front to back. A remote read that fails part-way throws from the stream.</summary>
    public abstract Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken);

    /// <summary>
    /// Writes a file through <paramref name="write"/>, computing Adler-32 as the bytes go, and puts it in place only
    /// once it is complete (and, for a remote area, once the server's own checksum matches). Returns the size and
    /// checksum written.
    /// </summary>
    public abstract Task<(long Size, uint Adler32)> WriteAsync(string name, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken);

    /// <summary>Copies a stream into this area as <see cref="WriteAsync"/> does; <paramref name="length"/>, when known, lets a remote upload stream.</summary>
    public abstract Task<(long Size, uint Adler32)> WriteFromAsync(string name, Stream source, long? length, CancellationToken cancellationToken);

    /// <summary>Reads the file's bytes and returns their size and Adler-32 (what is there, not what was recorded).</summary>
    public async Task<(long Size, uint Adler32)> ChecksumAsync(string name, CancellationToken cancellationToken)
    {
        await using var stream = await OpenReadAsync(name, cancellationToken);
        return await Adler32Checksum.OfStreamAsync(stream, cancellationToken);
    }

    /// <summary>Removes a file; false when it was not there.</summary>
    public abstract Task<bool> DeleteAsync(string name, CancellationToken cancellationToken);

    /// <summary>Moves a file to another name in the same area (a rename on the storage, never a copy), refusing to overwrite.</summary>
    public abstract Task MoveAsync(string name, string newName, CancellationToken cancellationToken);

    /// <summary>Every file under <paramref name="folder"/> ("" for the whole area), temporary ones included, at any depth.</summary>
    public abstract IAsyncEnumerable<AreaEntry> ListAsync(string folder, CancellationToken cancellationToken);

    /// <summary>
    /// One level of a folder ("" for the area's top): the files and the folders (<see cref="AreaEntry.IsFolder"/>) right
    /// in it, nothing below them; none when there is no such folder. What a walk that does not need every level reads.
    /// </summary>
    public abstract IAsyncEnumerable<AreaEntry> ListFolderAsync(string folder, CancellationToken cancellationToken);

    /// <summary>Removes a folder with nothing in it: true once it is gone (or was not there), false while something is still in it.</summary>
    public abstract Task<bool> DeleteEmptyFolderAsync(string folder, CancellationToken cancellationToken);

    /// <summary>
    /// Every file under <paramref name="folder"/> at any depth, for an endpoint that lists one level at a time
    /// (PROPFIND Depth 1, xrdfs ls): <paramref name="listLevel"/> gives a level's members by the folder's name ("" for the top).
    /// </summary>
    protected async IAsyncEnumerable<AreaEntry> WalkAsync(
        string folder, Func<string, CancellationToken, IAsyncEnumerable<Http.RemoteEntry>> listLevel, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var pending = new Stack<string>();
        pending.Push(folder.Length == 0 ? "" : CheckedName(folder));
        while (pending.TryPop(out var at))
        {
            await foreach (var entry in listLevel(at, cancellationToken))
            {
                var name = at.Length == 0 ? entry.Href : $"{at}/{entry.Href}";
                if (entry.IsCollection)
                {
                    pending.Push(name);
                }
                else
                {
                    yield return new AreaEntry(name, entry.Size, entry.Modified);
                }
            }
        }
    }

    /// <summary>One level of a folder of a remote area, through its own listing of one level.</summary>
    protected async IAsyncEnumerable<AreaEntry> LevelAsync(
        string folder, Func<string, CancellationToken, IAsyncEnumerable<Http.RemoteEntry>> listLevel, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var at = folder.Length == 0 ? "" : CheckedName(folder);
        await foreach (var entry in listLevel(at, cancellationToken))
        {
            yield return new AreaEntry(at.Length == 0 ? entry.Href : $"{at}/{entry.Href}", entry.Size, entry.Modified, entry.IsCollection);
        }
    }

    /// <summary>Refuses a URL that carries user information: credentials live in files and settings, and the message never repeats them.</summary>
    public static Uri WithoutCredentials(Uri url) => string.IsNullOrEmpty(url.UserInfo)
        ? url
        : throw new ArgumentException(
            $"A storage URL for {url.Host} carries user information; put credentials in a token file or certificate setting, not in the URL.", nameof(url));

    /// <summary>The name checked as a safe name inside an area: relative, no "..", no control characters.</summary>
    protected string CheckedName(string name)
    {
        var problem = AreaNames.Problem(name);
        return problem is null ? name : throw new ArgumentException($"File name '{name}' in area '{Name}' {problem}.", nameof(name));
    }

    public override string ToString() => $"{Name} ({Location})";
}
