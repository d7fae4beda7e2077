using System.Globalization;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage.Http;

namespace Pipeline.Infrastructure.Storage.Xrootd;

/// <summary>
/// Files on an XRootD server (<c>root://host:port//path</c>) through the XRootD client tools, run from argument
/// lists and never through a shell. An upload goes to a temporary name with <c>xrdcp --cksum adler32:VALUE</c> (the
/// tool compares the server's Adler-32 with the known one, or prints the server's when none is known), and
/// only then is renamed with <c>xrdfs mv</c>; anything that fails removes the temporary file, because <c>xrdcp</c>
/// leaves a copy whose checksum it refused in place.
/// </summary>
public sealed class XrootdClient(TimeSpan timeout, int connectSeconds = 15, int requestSeconds = 60, IReadOnlyDictionary<string, string>? credentials = null)
{
    /// <summary>
    /// The XRootD client's own patience, set for every tool it runs: left at its defaults it tries to reach a dead
    /// server for minutes per call, waits half an hour to recover a stream cut by a crash, and as long for an answer
    /// to one request. Here a server that cannot be reached for <c>connectSeconds</c>, twice, or that leaves one request
    /// (a piece of a file, not the whole copy) unanswered for <c>requestSeconds</c>, fails the call, which the stage
    /// then retries.
    /// </summary>
    private readonly IReadOnlyDictionary<string, string> _patience = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["XRD_CONNECTIONWINDOW"] = connectSeconds.ToString(CultureInfo.InvariantCulture),
        ["XRD_CONNECTIONRETRY"] = "2",
        ["XRD_STREAMERRORWINDOW"] = "0",
        ["XRD_REQUESTTIMEOUT"] = requestSeconds.ToString(CultureInfo.InvariantCulture),
    }.Concat(credentials ?? new Dictionary<string, string>()).ToDictionary(StringComparer.Ordinal);

    private const string Copy = "xrdcp";
    private const string FileSystem = "xrdfs";
    private const int NoSuchFile = 54;

    /// <summary>Refuses a URL that is not root:// or carries a credential.</summary>
    public static Uri CheckUrl(Uri url)
    {
        if (!url.IsAbsoluteUri || url.Scheme is not ("root" or "roots"))
        {
            throw new ArgumentException($"'{url.GetLeftPart(UriPartial.Authority)}' is not a root:// URL.", nameof(url));
        }
        return StorageArea.WithoutCredentials(url);
    }

    /// <summary>
    /// Copies a local file to <paramref name="target"/> and returns the Adler-32 the server reports. With the file's
    /// Adler-32 known (computed when it was written), xrdcp compares the server's with it before the rename (a
    /// difference is a <see cref="RemoteChecksumMismatchException"/>); without, xrdcp prints the server's checksum of what it wrote, and the caller compares it with
    /// what it expects (the catalog's). Faster than through standard input: xrdcp reads the file itself.
    /// </summary>
    public Task<string> UploadAsync(string localPath, string? knownAdler32, Uri target, CancellationToken cancellationToken) =>
        CopyIntoPlaceAsync(localPath, knownAdler32, target, [], cancellationToken);

    /// <summary>
    /// Copies a file between XRootD servers (or within one) with the bytes going from server to server, never through
    /// this host (<c>xrdcp --tpc only</c>: the destination pulls from the source, which needs <c>ofs.tpc</c> on it). The
    /// destination's Adler-32 is compared with <paramref name="adler32"/> by xrdcp before the rename into place, as for
    /// an upload. Fails, leaving nothing, where the servers cannot copy between themselves.
    /// </summary>
    public Task<string> ThirdPartyCopyAsync(Uri source, string adler32, Uri target, CancellationToken cancellationToken) =>
        CopyIntoPlaceAsync(Full(source), adler32, target, ["--tpc", "only"], cancellationToken);

    private async Task<string> CopyIntoPlaceAsync(string from, string? knownAdler32, Uri target, IReadOnlyList<string> options, CancellationToken cancellationToken)
    {
        var temporary = new Uri(target.AbsoluteUri + WebDavClient.TemporaryMarker + Guid.NewGuid().ToString("N"));
        try
        {
            var check = knownAdler32 is null ? "adler32:print" : $"adler32:{knownAdler32}";
            var copied = await ExternalCommand.RunAsync([Copy, "--nopbar", "--path", "--force", .. options, "--cksum", check, from, Full(temporary)], null, timeout, cancellationToken,
                environment: _patience);
            if (knownAdler32 is not null && IsChecksumError(copied))
            {
                throw new RemoteChecksumMismatchException($"{Describe(target)}: the file's adler32 is {knownAdler32}, the server's checksum of the copy differs (xrdcp: {copied.Describe()}).");
            }
            Require(copied, "copy to", temporary);
            // With a known checksum xrdcp has compared the server's with it (exit 0 only when they are the same): asking
            // the server once more would cost a process and a round trip per file, and tell nothing new. Without,
            // xrdcp printed the server's: "adler32: 0a1b2c3d root://host//path size".
            var printed = copied.ErrorTail.Split('\n').Select(l => l.Trim().Split(' ')).FirstOrDefault(f => f.Length >= 2 && f[0] == "adler32:")?[1].PadLeft(8, '0');
            var stored = (knownAdler32 is null ? printed : knownAdler32.PadLeft(8, '0'))
                ?? throw new RemoteStorageException($"xrdcp to {Describe(temporary)} succeeded but the server gave no checksum of it.");
            if (!Adler32Checksum.IsWellFormed(stored) || (knownAdler32 is not null && !Adler32Checksum.Same(stored, knownAdler32)))
            {
                throw new RemoteChecksumMismatchException($"{Describe(target)}: the file's adler32 is {knownAdler32 ?? "unknown"}, the server computed {stored}.");
            }
            await RenameAsync(temporary, target, cancellationToken);
            return stored;
        }
        catch
        {
            await DeleteQuietlyAsync(temporary);
            throw;
        }
    }

    /// <summary>
    /// Uploads what <paramref name="write"/> writes (into xrdcp's standard input, checksummed as the bytes go) to a
    /// temporary name, compares the server's Adler-32 of it with the one sent, and only then renames it to
    /// <paramref name="target"/>. Returns the size and Adler-32 written.
    /// </summary>
    public async Task<(long Size, uint Adler32)> UploadAsync(Func<Stream, CancellationToken, Task> write, Uri target, CancellationToken cancellationToken)
    {
        var temporary = new Uri(target.AbsoluteUri + WebDavClient.TemporaryMarker + Guid.NewGuid().ToString("N"));
        try
        {
            long size = 0;
            uint sent = 0;
            var outcome = await ExternalCommand.RunAsync([Copy, "--nopbar", "--path", "--force", "-", Full(temporary)], null, timeout, cancellationToken,
                environment: _patience, writeInput: async (input, token) =>
                {
                    await using var counted = new ChecksummingStream(input, leaveOpen: true);
                    await write(counted, token);
                    await counted.FlushAsync(token);
                    (size, sent) = (counted.Length, counted.Adler32);
                });
            Require(outcome, "copy to", temporary);
            var stored = await ChecksumAsync(temporary, cancellationToken)
                ?? throw new RemoteStorageException($"xrdcp to {Describe(temporary)} succeeded but the file is not there.");
            if (!Adler32Checksum.Same(stored, Adler32Checksum.Format(sent)))
            {
                throw new RemoteChecksumMismatchException($"{Describe(target)}: sent adler32 {Adler32Checksum.Format(sent)}, the server computed {stored}.");
            }
            var held = await SizeAsync(temporary, cancellationToken);
            if (held != size)
            {
                throw new RemoteChecksumMismatchException($"{Describe(target)}: {size} bytes sent, the server holds {held}.");
            }
            await RenameAsync(temporary, target, cancellationToken);
            return (size, sent);
        }
        catch
        {
            await DeleteQuietlyAsync(temporary);
            throw;
        }
    }

    /// <summary>Opens a file for reading as xrdcp writes it to its standard output; a copy that fails part-way throws at its end.</summary>
    public Stream OpenRead(Uri source) =>
        ExternalCommand.OpenOutput([Copy, "--nopbar", Full(source), "-"], timeout, outcome => outcome.ExitCode == NoSuchFile
            ? new FileNotFoundException($"{Describe(source)} is not on the server.")
            : new RemoteStorageException($"The copy from {Describe(source)} failed: {outcome.Describe()}"), _patience);

    /// <summary>Renames a file on the server, making the target's folder when it is missing. XRootD's mv replaces an existing target.</summary>
    public async Task RenameAsync(Uri from, Uri to, CancellationToken cancellationToken)
    {
        IReadOnlyList<string> move = [FileSystem, Server(to), "mv", PathOf(from), PathOf(to)];
        var outcome = await ExternalCommand.RunAsync(move, null, timeout, cancellationToken, environment: _patience);
        var folder = PathOf(to)[..PathOf(to).LastIndexOf('/')];
        if (outcome.ExitCode == NoSuchFile && folder.Length > 0 && await SizeAsync(from, cancellationToken) is not null)
        {
            // The source is there, so the target's folder is not. mkdir -p answers "file exists" when another writer made it meanwhile.
            var made = await ExternalCommand.RunAsync([FileSystem, Server(to), "mkdir", "-p", folder], null, timeout, cancellationToken, environment: _patience);
            if (!made.Succeeded && !made.ErrorTail.Contains("file exists", StringComparison.OrdinalIgnoreCase))
            {
                Require(made, "folder for", to);
            }
            outcome = await ExternalCommand.RunAsync(move, null, timeout, cancellationToken, environment: _patience);
        }
        if (outcome.ExitCode == NoSuchFile)
        {
            throw new FileNotFoundException($"{Describe(from)} is not on the server.");
        }
        Require(outcome, "rename to", to);
    }

    /// <summary>The members of a folder, one level, with size and last change (xrdfs ls -l).</summary>
    public async Task<IReadOnlyList<RemoteEntry>> ListAsync(Uri folder, CancellationToken cancellationToken)
    {
        var entries = new List<RemoteEntry>();
        var outcome = await ExternalCommand.RunAsync([FileSystem, Server(folder), "ls", "-l", PathOf(folder)], async (output, token) =>
        {
            using var lines = new StreamReader(output);
            while (await lines.ReadLineAsync(token) is { } line)
            {
                if (ParseLongListing(line) is { } entry)
                {
                    entries.Add(entry);
                }
            }
        }, timeout, cancellationToken, environment: _patience);
        if (outcome.ExitCode == NoSuchFile)
        {
            return [];
        }
        Require(outcome, "listing of", folder);
        return entries;
    }

    // "-rw-r--r-- owner group 4 2026-12-03 01:37:23 /a/b/f1": the path is the rest of the line (it may hold spaces).
    private static RemoteEntry? ParseLongListing(string line)
    {
        var fields = line.Split(' ', 7, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 7 || !long.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var size))
        {
            return null;
        }
        DateTimeOffset.TryParse($"{fields[4]} {fields[5]}", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var modified);
        var path = fields[6];
        return new RemoteEntry(path[(path.LastIndexOf('/') + 1)..], size, modified, fields[0].StartsWith('d'));
    }

    /// <summary>
    /// Streams <paramref name="source"/> into <paramref name="destination"/> (xrdcp to its standard output), computing
    /// its Adler-32, and compares it with the server's and, when given, the catalog's.
    /// </summary>
    public async Task<string> DownloadAsync(Uri source, Stream destination, string? expectedAdler32, CancellationToken cancellationToken)
    {
        uint received = 0;
        var outcome = await ExternalCommand.RunAsync([Copy, "--nopbar", Full(source), "-"], async (output, token) =>
        {
            await using var counted = new ChecksummingStream(destination, leaveOpen: true);
            await output.CopyToAsync(counted, 1 << 20, token);
            received = counted.Adler32;
        }, timeout, cancellationToken, environment: _patience);
        Require(outcome, "copy from", source);
        var got = Adler32Checksum.Format(received);
        var reported = await ChecksumAsync(source, cancellationToken)
            ?? throw new RemoteStorageException($"{Describe(source)} went away while it was read.");
        RemoteChecksumMismatchException.ThrowUnlessSame(Describe(source), got, reported, expectedAdler32);
        return got;
    }

    /// <summary>The server's Adler-32 of a file, or null when there is no such file.</summary>
    public async Task<string?> ChecksumAsync(Uri file, CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync([FileSystem, Server(file), "query", "checksum", PathOf(file)], null, timeout, cancellationToken, environment: _patience);
        if (outcome.ExitCode == NoSuchFile)
        {
            return null;
        }
        Require(outcome, "checksum of", file);
        // "adler32 8320b823"
        var parts = outcome.Output.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var value = parts.Length == 2 && parts[0] == "adler32" ? parts[1].PadLeft(8, '0').ToLowerInvariant() : "";
        return Adler32Checksum.IsWellFormed(value)
            ? value
            : throw new RemoteStorageException($"{Describe(file)}: the server's checksum answer is not an adler32: '{outcome.Output.Trim()}'.");
    }

    /// <summary>The file's size, or null when there is no such file.</summary>
    public async Task<long?> SizeAsync(Uri file, CancellationToken cancellationToken) => (await StatAsync(file, cancellationToken))?.Size;

    /// <summary>
    /// The server's stat of a file, or null when there is no such file: its size, whether it is offline (on tape
    /// only, in a nearline path) and whether the server says a backup copy exists (CTA sets that flag once the file is
    /// on tape).
    /// </summary>
    public async Task<XrootdStat?> StatAsync(Uri file, CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync([FileSystem, Server(file), "stat", PathOf(file)], null, timeout, cancellationToken, environment: _patience);
        if (outcome.ExitCode == NoSuchFile)
        {
            return null;
        }
        Require(outcome, "stat of", file);
        // "Size:   100000" and "Flags:  60 (Other|Offline|IsReadable|IsWritable)"
        var fields = outcome.Output.Split('\n').Select(l => l.Trim().Split(':', 2)).Where(p => p.Length == 2)
            .GroupBy(p => p[0], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First()[1].Trim(), StringComparer.Ordinal);
        if (!fields.TryGetValue("Size", out var sizeText) || !long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out var size))
        {
            throw new RemoteStorageException($"{Describe(file)}: the server's stat answer has no size.");
        }
        var flags = fields.TryGetValue("Flags", out var flagText) && flagText.IndexOf('(') is var open and >= 0
            ? flagText[(open + 1)..].TrimEnd(')').Split('|', StringSplitOptions.RemoveEmptyEntries)
            : [];
        return new XrootdStat(size, flags.Contains("Offline", StringComparer.Ordinal), flags.Contains("BackUpExists", StringComparer.Ordinal));
    }

    /// <summary>
    /// A user attribute of a file as the server keeps it (<c>xrdfs xattr PATH get NAME</c>), or null when the file or
    /// the attribute is not there.
    /// </summary>
    public async Task<string?> AttributeAsync(Uri file, string name, CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync([FileSystem, Server(file), "xattr", PathOf(file), "get", name], null, timeout, cancellationToken, environment: _patience);
        if (outcome.ExitCode == NoSuchFile)
        {
            return null;
        }
        Require(outcome, "attribute of", file);
        // "# file: /tape/a.dat" then 'tape.copy="volume=/tape/vol1 size=200000 adler32=6e49ede3"'
        var prefix = name + "=";
        var line = outcome.Output.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith(prefix, StringComparison.Ordinal));
        return line?[prefix.Length..].Trim('"');
    }

    /// <summary>The most files one prepare request names: XRootD's generic prepare plugin refuses more than 48.</summary>
    public const int FilesPerPrepare = 40;

    /// <summary>
    /// Asks the server to bring files online from tape (<c>xrdfs prepare -s</c>), or to drop their disk copies
    /// (<c>-e</c>, evict), in requests of at most <see cref="FilesPerPrepare"/> files, in the order given: a server's
    /// residency manager recalls them first come, first served, so files given volume by volume are read that way.
    /// </summary>
    public async Task PrepareAsync(IReadOnlyList<Uri> files, bool evict, CancellationToken cancellationToken)
    {
        foreach (var server in files.GroupBy(Server, StringComparer.Ordinal))
        {
            foreach (var chunk in server.Chunk(FilesPerPrepare))
            {
                var outcome = await ExternalCommand.RunAsync([FileSystem, server.Key, "prepare", evict ? "-e" : "-s", .. chunk.Select(PathOf)], null, timeout, cancellationToken,
                    environment: _patience);
                Require(outcome, evict ? "eviction of" : "recall of", chunk[0]);
            }
        }
    }

    /// <summary>Removes a file; false when it was not there.</summary>
    public async Task<bool> DeleteAsync(Uri file, CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync([FileSystem, Server(file), "rm", PathOf(file)], null, timeout, cancellationToken, environment: _patience);
        if (outcome.ExitCode == NoSuchFile)
        {
            return false;
        }
        Require(outcome, "removal of", file);
        return true;
    }

    /// <summary>Removes a folder with nothing in it (xrdfs rmdir, which succeeds for a folder that is not there); false while it is not empty.</summary>
    public async Task<bool> RemoveEmptyFolderAsync(Uri folder, CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync([FileSystem, Server(folder), "rmdir", PathOf(folder)], null, timeout, cancellationToken, environment: _patience);
        if (!outcome.Succeeded && outcome.ErrorTail.Contains("not empty", StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        Require(outcome, "removal of the folder", folder);
        return true;
    }

    private async Task RunAsync(IReadOnlyList<string> command, string what, Uri url, CancellationToken cancellationToken) =>
        Require(await ExternalCommand.RunAsync(command, null, timeout, cancellationToken, environment: _patience), what, url);

    private async Task DeleteQuietlyAsync(Uri file)
    {
        try
        {
            // Not the caller's token: a cancelled upload still removes what it left.
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await DeleteAsync(file, limit.Token);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException)
        {
            // The temporary name is never read as a file; it is left for a sweep.
        }
    }

    /// <summary>xrdcp's answer when the destination's checksum is not the one it was given (exit code 53, "CheckSum error").</summary>
    private static bool IsChecksumError(CommandOutcome outcome) =>
        outcome.ExitCode == ChecksumErrorExit || outcome.ErrorTail.Contains("CheckSum error", StringComparison.OrdinalIgnoreCase);

    private const int ChecksumErrorExit = 53;

    private static void Require(CommandOutcome outcome, string what, Uri url)
    {
        if (!outcome.Succeeded)
        {
            throw new RemoteStorageException($"The {what} {Describe(url)} failed: {outcome.Describe()}");
        }
    }

    // root://host:port//path: the server is root://host:port, the path what follows the double slash.
    private static string Server(Uri url) => url.GetLeftPart(UriPartial.Authority);

    // The tools take the path as it is on the server, not %-escaped; a '?' would begin XRootD's opaque data.
    private static string PathOf(Uri url)
    {
        var path = "/" + Uri.UnescapeDataString(url.AbsolutePath).TrimStart('/');
        return path.Contains('?') ? throw new ArgumentException($"An XRootD path cannot hold '?': {Describe(url)}.", nameof(url)) : path;
    }

    // XRootD reads a single slash after the port as a path relative to the server's; an area's paths are absolute.
    private static string Full(Uri url) => $"{Server(url)}/{PathOf(url)}";

    // The path only: opaque data after '?' may carry a token.
    private static string Describe(Uri url) => url.GetLeftPart(UriPartial.Path);
}

/// <summary>What an XRootD server's stat says of a file.</summary>
public sealed record XrootdStat(long Size, bool Offline, bool BackupExists);
