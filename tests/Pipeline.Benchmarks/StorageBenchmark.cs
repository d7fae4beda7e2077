using System.Diagnostics;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Benchmarks;

/// <summary>
/// The project's upload and download of the same bytes to and from a local XRootD server, over root:// and over
/// HTTP, against the tools doing the same copies in the same run: xrdcp with its Adler-32 check on both ends, and
/// curl followed by what it takes to compare checksums on both ends (xrdadler32 of the local file, the server's
/// digest by HEAD). The project checks the same: the Adler-32 computed while the bytes move against the server's.
/// Each copy is timed twice and the faster kept, for every side alike.
/// </summary>
public static class StorageBenchmark
{
    private const string Script = "tests/xrootd/local-server.sh";

    public static async Task<object> RunAsync(string workDirectory, int megabytes)
    {
        Directory.CreateDirectory(workDirectory);
        var server = Path.Combine(workDirectory, "server");
        await RunAsync("bash", [Script, "start", server]);
        try
        {
            var settings = File.ReadAllLines(Path.Combine(server, "server.env")).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            var (rootUrl, httpUrl) = (settings["ROOT_URL"], settings["HTTP_URL"]);
            var source = Path.Combine(workDirectory, "source.bin");
            var bytes = await WriteRandomAsync(source, (long)megabytes << 20);
            var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>
            {
                ["archive"] = $"{rootUrl}//bench/root/",
                ["output"] = $"{httpUrl}/bench/http/",
            }, Path.Combine(workDirectory, "data"));
            var target = Path.Combine(workDirectory, "download.bin");

            // Every upload makes a new file, as the pipeline's do (replacing one would add its removal to the time).
            var root = await CompareAsync(bytes,
                round => UploadAsync(areas.Archive, source, bytes, round),
                round => RunAsync("xrdcp", ["--nopbar", "--force", "--cksum", "adler32", source, $"{rootUrl}//bench/tool/root-{round}.bin"]),
                () => DownloadAsync(areas.Archive, target),
                () => RunAsync("xrdcp", ["--nopbar", "--force", "--cksum", "adler32", $"{rootUrl}//bench/tool/root-1.bin", target]));
            var http = await CompareAsync(bytes,
                round => UploadAsync(areas.Output, source, bytes, round),
                async round =>
                {
                    await RunAsync("curl", ["-sSf", "-T", source, $"{httpUrl}/bench/tool/http-{round}.bin"]);
                    await SameChecksumAsync(source, $"{httpUrl}/bench/tool/http-{round}.bin");
                },
                () => DownloadAsync(areas.Output, target),
                async () =>
                {
                    await RunAsync("curl", ["-sSf", "-o", target, $"{httpUrl}/bench/tool/http-1.bin"]);
                    await SameChecksumAsync(target, $"{httpUrl}/bench/tool/http-1.bin");
                });
            File.Delete(source);
            File.Delete(target);
            return new { megabytes, root, http };
        }
        finally
        {
            await RunAsync("bash", [Script, "stop", server]);
        }
    }

    private static async Task<object> CompareAsync(long bytes, Func<int, Task> upload, Func<int, Task> toolUpload, Func<Task> download, Func<Task> toolDownload)
    {
        var uploadMbps = bytes / 1e6 / await BestOfTwoAsync(upload);
        var toolUploadMbps = bytes / 1e6 / await BestOfTwoAsync(toolUpload);
        var downloadMbps = bytes / 1e6 / await BestOfTwoAsync(_ => download());
        var toolDownloadMbps = bytes / 1e6 / await BestOfTwoAsync(_ => toolDownload());
        return new
        {
            uploadMbps = Math.Round(uploadMbps),
            toolUploadMbps = Math.Round(toolUploadMbps),
            uploadRatio = Math.Round(uploadMbps / toolUploadMbps, 2),
            downloadMbps = Math.Round(downloadMbps),
            toolDownloadMbps = Math.Round(toolDownloadMbps),
            downloadRatio = Math.Round(downloadMbps / toolDownloadMbps, 2),
        };
    }

    private static async Task<double> BestOfTwoAsync(Func<int, Task> copy)
    {
        var best = double.MaxValue;
        for (var round = 0; round < 2; round++)
        {
            var watch = Stopwatch.StartNew();
            await copy(round);
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return best;
    }

    /// <summary>A copy from a folder area into the remote one, as the archiver and the collector make theirs.</summary>
    private static async Task UploadAsync(StorageArea area, string source, long bytes, int round)
    {
        var folder = new LocalArea("source", new Uri(Path.GetDirectoryName(source)!));
        var (size, _) = await StreamingCopy.CopyAsync(folder, Path.GetFileName(source), area, $"bench-{round}.bin", CancellationToken.None);
        if (size != bytes)
        {
            throw new InvalidOperationException($"Uploaded {size} of {bytes} bytes to {area.Name}.");
        }
    }

    /// <summary>Reads the file into a local one, checksumming as the bytes arrive, and compares the server's checksum, as a stage does.</summary>
    private static async Task DownloadAsync(StorageArea area, string target)
    {
        uint adler;
        await using (var file = new FileStream(target, FileMode.Create, FileAccess.Write, FileShare.None, StreamingCopy.FileBufferSize, FileOptions.Asynchronous))
        await using (var counted = new ChecksummingStream(file))
        await using (var source = await area.OpenReadAsync("bench-1.bin", CancellationToken.None))
        {
            await StreamingCopy.CopyOverlappedAsync(source, counted, CancellationToken.None);
            adler = counted.Adler32;
        }
        var stored = await area.StatAsync("bench-1.bin", CancellationToken.None);
        if (stored?.StoredAdler32 is not { } reported || !Adler32Checksum.Same(reported, Adler32Checksum.Format(adler)))
        {
            throw new InvalidOperationException($"Downloaded adler32 {Adler32Checksum.Format(adler)} from {area.Name}, the server reports {stored?.StoredAdler32}.");
        }
    }

    /// <summary>What a script around curl does to compare checksums: the local file's with xrdadler32, the server's by HEAD.</summary>
    private static async Task SameChecksumAsync(string local, string url)
    {
        var mine = (await RunAsync("xrdadler32", [local])).Split(' ', 2)[0];
        var headers = await RunAsync("curl", ["-sSfI", "-H", "Want-Digest: adler32", url]);
        if (!headers.Contains($"adler32={mine}", StringComparison.OrdinalIgnoreCase))
        {
            throw new InvalidOperationException($"curl's copy at {url} does not have adler32 {mine}: {headers}");
        }
    }

    private static async Task<long> WriteRandomAsync(string path, long length)
    {
        var random = new Random(7);
        var buffer = new byte[1 << 20];
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, StreamingCopy.FileBufferSize, FileOptions.Asynchronous);
        for (long written = 0; written < length; written += buffer.Length)
        {
            random.NextBytes(buffer);
            await file.WriteAsync(buffer);
        }
        return file.Length;
    }

    private static async Task<string> RunAsync(string program, IReadOnlyList<string> arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} exited with {process.ExitCode}: {await errors}");
        }
        return await output;
    }
}
