using Pipeline.Infrastructure.Checksums;

namespace Pipeline.Infrastructure.Storage.Http;

/// <summary>
/// A storage area on an HTTP/WebDAV server (dCache, EOS, StoRM, XRootD's HTTP interface): every write is verified
/// against the server's own Adler-32 before it is moved into place. A write whose length is not known in advance
/// (a merged file as it is made) is spooled to a local file first, because such servers do not take chunked uploads;
/// a copy of a file whose length is known streams straight through.
/// </summary>
public sealed class WebDavArea : StorageArea
{
    private readonly WebDavClient _client;
    private readonly string _spool;

    public WebDavArea(string name, Uri location, WebDavClient client, string spoolFolder)
        : base(name, AsFolder(WebDavClient.CheckUrl(location)))
    {
        _client = client;
        _spool = spoolFolder;
    }

    private static Uri AsFolder(Uri url) => url.AbsoluteUri.EndsWith('/') ? url : new Uri(url.AbsoluteUri + "/");

    public override Uri UriOf(string name) =>
        new(Location, string.Join('/', CheckedName(name).Split('/').Select(Uri.EscapeDataString)));

    public override async Task<StoredFile?> StatAsync(string name, CancellationToken cancellationToken) =>
        await _client.StatAsync(UriOf(name), cancellationToken) is { } file ? new StoredFile(file.Size, file.Adler32) : null;

    public override async Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken) =>
        (await _client.OpenReadAsync(UriOf(name), cancellationToken)).Body;

    public override async Task<(long Size, uint Adler32)> WriteFromAsync(string name, Stream source, long? length, CancellationToken cancellationToken)
    {
        length ??= source.CanSeek ? source.Length - source.Position : null;
        if (length is null)
        {
            return await WriteAsync(name, (target, token) => StreamingCopy.CopyOverlappedAsync(source, target, token), cancellationToken);
        }
        var stored = await _client.UploadAsync(source, UriOf(name), cancellationToken, length);
        return (stored.Size, Adler32Checksum.Parse(stored.Adler32!));
    }

    public override async Task<(long Size, uint Adler32)> WriteAsync(string name, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var target = UriOf(name);
        Directory.CreateDirectory(_spool);
        await using var spooled = new FileStream(Path.Combine(_spool, $"{Guid.NewGuid():N}.spool"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
            StreamingCopy.FileBufferSize, FileOptions.Asynchronous | FileOptions.DeleteOnClose | FileOptions.SequentialScan);
        await write(spooled, cancellationToken);
        await spooled.FlushAsync(cancellationToken);
        spooled.Position = 0;
        var stored = await _client.UploadAsync(spooled, target, cancellationToken, spooled.Length);
        return (stored.Size, Adler32Checksum.Parse(stored.Adler32!));
    }

    public override Task<bool> DeleteAsync(string name, CancellationToken cancellationToken) => _client.DeleteAsync(UriOf(name), cancellationToken);

    public override async Task MoveAsync(string name, string newName, CancellationToken cancellationToken)
    {
        // WebDAV's "Overwrite: F" is not honoured by every server: look first (another writer could still race in).
        if (await ExistsAsync(newName, cancellationToken))
        {
            throw new IOException($"'{newName}' is already in area '{Name}'.");
        }
        await _client.MoveAsync(UriOf(name), UriOf(newName), cancellationToken);
    }

    public override IAsyncEnumerable<AreaEntry> ListAsync(string folder, CancellationToken cancellationToken) =>
        WalkAsync(folder, (at, token) => _client.ListAsync(at.Length == 0 ? Location : UriOf(at), token), cancellationToken);

    public override IAsyncEnumerable<AreaEntry> ListFolderAsync(string folder, CancellationToken cancellationToken) =>
        LevelAsync(folder, (at, token) => _client.ListAsync(at.Length == 0 ? Location : UriOf(at), token), cancellationToken);

    /// <summary>A DELETE of a collection removes what is in it too: the folder is looked at first (a file put in meanwhile would go with it).</summary>
    public override async Task<bool> DeleteEmptyFolderAsync(string folder, CancellationToken cancellationToken)
    {
        await foreach (var _ in ListFolderAsync(folder, cancellationToken))
        {
            return false;
        }
        await _client.DeleteAsync(new Uri(UriOf(folder).AbsoluteUri.TrimEnd('/') + "/"), cancellationToken);
        return true;
    }
}
