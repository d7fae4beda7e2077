using System.Runtime.CompilerServices;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage.Http;

namespace Pipeline.Infrastructure.Storage.Xrootd;

/// <summary>
/// A storage area on an XRootD server (<c>root://host:port//path</c>: EOS, CTA's disk buffer, a plain XRootD cluster)
/// through xrdcp and xrdfs. Writes stream into xrdcp's standard input under a temporary name and are renamed into
/// place once the server's own Adler-32 matches what was sent; reads stream from xrdcp's standard output.
/// </summary>
public sealed class XrootdArea : StorageArea, INearlineArea
{
    private readonly XrootdClient _client;

    public XrootdArea(string name, Uri location, XrootdClient client)
        : base(name, AsFolder(XrootdClient.CheckUrl(location)))
    {
        _client = client;
    }

    // root://host:port//path/: the double slash makes the path absolute on the server.
    private static Uri AsFolder(Uri url)
    {
        var path = "/" + url.AbsolutePath.Trim('/');
        return new Uri($"{url.GetLeftPart(UriPartial.Authority)}/{(path == "/" ? "/" : path + "/")}");
    }

    public override Uri UriOf(string name) =>
        new(Location.AbsoluteUri + string.Join('/', CheckedName(name).Split('/').Select(Uri.EscapeDataString)));

    public override async Task<StoredFile?> StatAsync(string name, CancellationToken cancellationToken)
    {
        var file = UriOf(name);
        return await _client.SizeAsync(file, cancellationToken) is { } size
            ? new StoredFile(size, await _client.ChecksumAsync(file, cancellationToken))
            : null;
    }

    public async Task<Residency?> ResidencyAsync(string name, CancellationToken cancellationToken)
    {
        var file = UriOf(name);
        if (await _client.StatAsync(file, cancellationToken) is not { } stat)
        {
            return null;
        }
        var recorded = TapeCopy.Parse(await _client.AttributeAsync(file, TapeCopy.Attribute, cancellationToken));
        return new Residency(stat.Size, !stat.Offline, recorded ?? (stat.BackupExists ? new TapeCopy(null, null, null) : null));
    }

    public Task RequestOnlineAsync(IReadOnlyList<string> names, CancellationToken cancellationToken) =>
        _client.PrepareAsync([.. names.Select(UriOf)], evict: false, cancellationToken);

    public Task EvictAsync(IReadOnlyList<string> names, CancellationToken cancellationToken) =>
        _client.PrepareAsync([.. names.Select(UriOf)], evict: true, cancellationToken);

    public override Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken) => Task.FromResult(_client.OpenRead(UriOf(name)));

    public override Task<(long Size, uint Adler32)> WriteFromAsync(string name, Stream source, long? length, CancellationToken cancellationToken) =>
        WriteAsync(name, (target, token) => StreamingCopy.CopyOverlappedAsync(source, target, token), cancellationToken);

    public override Task<(long Size, uint Adler32)> WriteAsync(string name, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken) =>
        _client.UploadAsync(write, UriOf(name), cancellationToken);

    /// <summary>
    /// Copies a file of this host into the area with xrdcp reading it itself (measured faster than through its standard
    /// input), xrdcp comparing the source's Adler-32 as it reads with the server's; returns the size and that checksum.
    /// With <paramref name="expectedAdler32"/> the server's checksum must also equal it before the file takes its name.
    /// </summary>
    public async Task<(long Size, uint Adler32)> UploadFileAsync(string name, string localPath, CancellationToken cancellationToken, string? expectedAdler32 = null)
    {
        var size = new FileInfo(localPath).Length;
        var stored = await _client.UploadAsync(localPath, expectedAdler32, UriOf(name), cancellationToken);
        return (size, Adler32Checksum.Parse(stored));
    }

    /// <summary>
    /// Copies a file of another XRootD area into this one server to server (<see cref="XrootdClient.ThirdPartyCopyAsync"/>),
    /// checked against the Adler-32 the caller knows; returns the size the server holds and that checksum.
    /// </summary>
    public async Task<(long Size, uint Adler32)> CopyFromAsync(XrootdArea source, string sourceName, string name, string adler32, CancellationToken cancellationToken)
    {
        var stored = await _client.ThirdPartyCopyAsync(source.UriOf(sourceName), adler32, UriOf(name), cancellationToken);
        var size = await _client.SizeAsync(UriOf(name), cancellationToken)
            ?? throw new RemoteStorageException($"'{name}' went from area '{Name}' right after it was copied there.");
        return (size, Adler32Checksum.Parse(stored));
    }

    public override Task<bool> DeleteAsync(string name, CancellationToken cancellationToken) => _client.DeleteAsync(UriOf(name), cancellationToken);

    public override async Task MoveAsync(string name, string newName, CancellationToken cancellationToken)
    {
        // xrdfs mv replaces an existing target: look first (another writer could still race in).
        if (await _client.SizeAsync(UriOf(newName), cancellationToken) is not null)
        {
            throw new IOException($"'{newName}' is already in area '{Name}'.");
        }
        await _client.RenameAsync(UriOf(name), UriOf(newName), cancellationToken);
    }

    public override IAsyncEnumerable<AreaEntry> ListAsync(string folder, CancellationToken cancellationToken) =>
        WalkAsync(folder, (at, token) => ListLevelAsync(at.Length == 0 ? Location : UriOf(at), token), cancellationToken);

    public override IAsyncEnumerable<AreaEntry> ListFolderAsync(string folder, CancellationToken cancellationToken) =>
        LevelAsync(folder, (at, token) => ListLevelAsync(at.Length == 0 ? Location : UriOf(at), token), cancellationToken);

    public override Task<bool> DeleteEmptyFolderAsync(string folder, CancellationToken cancellationToken) =>
        _client.RemoveEmptyFolderAsync(UriOf(CheckedName(folder)), cancellationToken);

    private async IAsyncEnumerable<RemoteEntry> ListLevelAsync(Uri folder, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var entry in await _client.ListAsync(folder, cancellationToken))
        {
            yield return entry;
        }
    }
}
