using System.Globalization;
using System.Runtime.CompilerServices;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage.Http;

namespace Pipeline.Infrastructure.Storage.Gfal;

/// <summary>
/// A storage area reached through gfal2's command-line tools, for the schemes the project does not speak itself
/// (<c>srm://</c>, <c>gsiftp://</c>, <c>s3://</c>, <c>dcap://</c>), or for any scheme written as <c>gfal+scheme://</c>.
/// The tools run from argument lists. gfal2-util 1.8 cannot stream binary bytes through a pipe (gfal-cat decodes
/// them as text, gfal-copy writes its progress to standard output and reads nothing from standard input), so both
/// directions go through a local spool file that is deleted when closed. The copy is made under a temporary name
/// with <c>gfal-copy -K adler32</c> (source and destination checksums compared by the tool), the destination's
/// checksum is compared once more with the one computed while spooling, and then <c>gfal-rename</c> puts it in place.
/// </summary>
public sealed class GfalArea : StorageArea
{
    private const int NoSuchFile = 2;
    private readonly string _spool;
    private readonly TimeSpan _timeout;

    public GfalArea(string name, Uri location, string spoolFolder, TimeSpan timeout)
        : base(name, AsFolder(WithoutCredentials(location)))
    {
        _spool = spoolFolder;
        _timeout = timeout;
    }

    /// <summary>The URL the tools are given: <c>gfal+</c> taken off.</summary>
    private static Uri AsFolder(Uri url) => url.AbsoluteUri.EndsWith('/') ? url : new Uri(url.AbsoluteUri + "/");

    public override Uri UriOf(string name) =>
        new(Location.AbsoluteUri + string.Join('/', CheckedName(name).Split('/').Select(Uri.EscapeDataString)));

    private static string ToolUrl(Uri url) => url.Scheme.StartsWith("gfal+", StringComparison.Ordinal) ? url.AbsoluteUri["gfal+".Length..] : url.AbsoluteUri;

    private string ToolUrl(string name) => ToolUrl(name.Length == 0 ? Location : UriOf(name));

    public override async Task<StoredFile?> StatAsync(string name, CancellationToken cancellationToken)
    {
        var stat = await RunAsync(["gfal-stat", ToolUrl(name)], cancellationToken);
        if (stat.ExitCode == NoSuchFile)
        {
            return null;
        }
        Require(stat, "stat of", name);
        var line = stat.Output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("Size:", StringComparison.Ordinal));
        var size = line is not null && long.TryParse(line["Size:".Length..].Trim().Split('\t', ' ')[0], NumberStyles.None, CultureInfo.InvariantCulture, out var s)
            ? s
            : throw new RemoteStorageException($"gfal-stat of {Describe(name)} gave no size.");
        return new StoredFile(size, await StoredChecksumAsync(name, cancellationToken));
    }

    private async Task<string?> StoredChecksumAsync(string name, CancellationToken cancellationToken)
    {
        var sum = await RunAsync(["gfal-sum", ToolUrl(name), "adler32"], cancellationToken);
        if (!sum.Succeeded)
        {
            return null;
        }
        // "URL 5f6fccec"
        var value = sum.Output.Trim().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.PadLeft(8, '0').ToLowerInvariant();
        return Adler32Checksum.IsWellFormed(value) ? value : null;
    }

    public override async Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        var spooled = CreateSpoolFile();
        try
        {
            var copied = await RunAsync(["gfal-copy", "--force", "--abort-on-failure", ToolUrl(name), new Uri(spooled.Name).AbsoluteUri], cancellationToken);
            if (copied.ExitCode == NoSuchFile)
            {
                throw new FileNotFoundException($"{Describe(name)} is not on the server.");
            }
            Require(copied, "copy from", name);
            spooled.Position = 0;
            return spooled;
        }
        catch
        {
            await spooled.DisposeAsync();
            throw;
        }
    }

    public override Task<(long Size, uint Adler32)> WriteFromAsync(string name, Stream source, long? length, CancellationToken cancellationToken) =>
        WriteAsync(name, (target, token) => StreamingCopy.CopyOverlappedAsync(source, target, token), cancellationToken);

    public override async Task<(long Size, uint Adler32)> WriteAsync(string name, Func<Stream, CancellationToken, Task> write, CancellationToken cancellationToken)
    {
        var target = UriOf(name);
        var temporary = new Uri(target.AbsoluteUri + TemporaryMarker + Guid.NewGuid().ToString("N"));
        await using var spooled = CreateSpoolFile();
        long size;
        uint adler;
        await using (var counted = new ChecksummingStream(spooled, leaveOpen: true))
        {
            await write(counted, cancellationToken);
            await counted.FlushAsync(cancellationToken);
            (size, adler) = (counted.Length, counted.Adler32);
        }
        await spooled.FlushAsync(cancellationToken);
        try
        {
            Require(await RunAsync(["gfal-copy", "--force", "--parent", "--abort-on-failure", "-K", "adler32", new Uri(spooled.Name).AbsoluteUri, ToolUrl(temporary)], cancellationToken),
                "copy to", name);
            var stored = await RunAsync(["gfal-sum", ToolUrl(temporary), "adler32"], cancellationToken);
            var reported = stored.Output.Trim().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).LastOrDefault()?.PadLeft(8, '0') ?? "";
            if (!Adler32Checksum.IsWellFormed(reported) || !Adler32Checksum.Same(reported, Adler32Checksum.Format(adler)))
            {
                throw new RemoteChecksumMismatchException($"{Describe(name)}: sent adler32 {Adler32Checksum.Format(adler)}, the server reports '{reported}'.");
            }
            Require(await RunAsync(["gfal-rename", ToolUrl(temporary), ToolUrl(target)], cancellationToken), "rename to", name);
            return (size, adler);
        }
        catch
        {
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            // Best effort, not the caller's token: a temporary name is never read as a file, and the sweep removes it later.
            await ((Task)RunAsync(["gfal-rm", ToolUrl(temporary)], limit.Token)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            throw;
        }
    }

    public override async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken)
    {
        var removed = await RunAsync(["gfal-rm", ToolUrl(name)], cancellationToken);
        if (removed.ExitCode == NoSuchFile)
        {
            return false;
        }
        Require(removed, "removal of", name);
        return true;
    }

    public override async Task MoveAsync(string name, string newName, CancellationToken cancellationToken)
    {
        if (await StatAsync(newName, cancellationToken) is not null)
        {
            throw new IOException($"'{newName}' is already in area '{Name}'.");
        }
        var slash = newName.LastIndexOf('/');
        if (slash > 0)
        {
            Require(await RunAsync(["gfal-mkdir", "-p", ToolUrl(newName[..slash])], cancellationToken), "folder for", newName);
        }
        var renamed = await RunAsync(["gfal-rename", ToolUrl(name), ToolUrl(newName)], cancellationToken);
        if (renamed.ExitCode == NoSuchFile)
        {
            throw new FileNotFoundException($"{Describe(name)} is not on the server.");
        }
        Require(renamed, "rename to", newName);
    }

    public override IAsyncEnumerable<AreaEntry> ListAsync(string folder, CancellationToken cancellationToken) =>
        WalkAsync(folder, ListLevelAsync, cancellationToken);

    public override IAsyncEnumerable<AreaEntry> ListFolderAsync(string folder, CancellationToken cancellationToken) =>
        LevelAsync(folder, ListLevelAsync, cancellationToken);

    /// <summary>gfal-rm removes a folder only recursively: the folder is looked at first (a file put in meanwhile would go with it).</summary>
    public override async Task<bool> DeleteEmptyFolderAsync(string folder, CancellationToken cancellationToken)
    {
        await foreach (var _ in ListFolderAsync(folder, cancellationToken))
        {
            return false;
        }
        var removed = await RunAsync(["gfal-rm", "-r", ToolUrl(CheckedName(folder))], cancellationToken);
        if (removed.ExitCode == NoSuchFile)
        {
            return true;
        }
        Require(removed, "removal of the folder", folder);
        return true;
    }

    // "-rw-rw-rw-   0 0     0       2000000 Dec  3 02:49 name": the name is the rest of the line after the time.
    private async IAsyncEnumerable<RemoteEntry> ListLevelAsync(string folder, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var listed = await RunAsync(["gfal-ls", "-l", ToolUrl(folder)], cancellationToken);
        if (listed.ExitCode == NoSuchFile)
        {
            yield break;
        }
        Require(listed, "listing of", folder);
        foreach (var line in listed.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.TrimEnd('\t', '\r').Split(' ', 9, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 9 && long.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out var size))
            {
                DateTimeOffset.TryParseExact($"{fields[5]} {fields[6]} {fields[7]}", ["MMM d HH:mm", "MMM d yyyy"], CultureInfo.InvariantCulture,
                    DateTimeStyles.AssumeUniversal, out var modified);
                yield return new RemoteEntry(fields[8], size, modified, fields[0].StartsWith('d'));
            }
        }
    }

    private FileStream CreateSpoolFile()
    {
        Directory.CreateDirectory(_spool);
        return new FileStream(Path.Combine(_spool, $"{Guid.NewGuid():N}.spool"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Read,
            StreamingCopy.FileBufferSize, FileOptions.Asynchronous | FileOptions.DeleteOnClose | FileOptions.SequentialScan);
    }

    private Task<CommandOutcome> RunAsync(IReadOnlyList<string> command, CancellationToken cancellationToken) =>
        ExternalCommand.RunAsync(command, null, _timeout, cancellationToken);

    private void Require(CommandOutcome outcome, string what, string name)
    {
        if (!outcome.Succeeded)
        {
            throw new RemoteStorageException($"The {what} {Describe(name)} failed: {outcome.Describe()}");
        }
    }

    private string Describe(string name) => $"'{name}' in area '{Name}'";
}
