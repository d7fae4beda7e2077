using System.Diagnostics;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Benchmarks;

/// <summary>
/// The project's upload and download of the same bytes to and from a local XRootD server, over root:// and over
/// HTTP, against the tools doing the same copies in the same run: xrdcp with its Adler-32 check on both ends, and
/// curl followed by what it takes to compare checksums on both ends (xrdadler32 of the local file, the server's
/// digest by HEAD). The project checks the same: the Adler-32 computed while the bytes move against the server's.
/// The two sides take turns, three rounds, each copy after the disk's dirty pages are written out, and each side's fastest is kept. Then the whole data path with every area
/// remote against the tools doing the same copies, and the peak memory of the project's copies for 1 and 2 GiB files.
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
            File.Delete(target);
            var dataPath = await CompareChainAsync(workDirectory, rootUrl, httpUrl, source, bytes);
            File.Delete(source);
            var memory = new List<object>();
            foreach (var gibibytes in new[] { 1, 2 })
            {
                memory.Add(await MeasureChainMemoryAsync(workDirectory, rootUrl, httpUrl, gibibytes));
            }
            return new { megabytes, root, http, dataPath, memory };
        }
        finally
        {
            await RunAsync("bash", [Script, "stop", server]);
        }
    }

    private static async Task<object> CompareAsync(long bytes, Func<int, Task> upload, Func<int, Task> toolUpload, Func<Task> download, Func<Task> toolDownload)
    {
        var (uploadSeconds, toolUploadSeconds) = await BestInterleavedAsync(upload, toolUpload);
        var (downloadSeconds, toolDownloadSeconds) = await BestInterleavedAsync(_ => download(), _ => toolDownload());
        var (uploadMbps, toolUploadMbps) = (bytes / 1e6 / uploadSeconds, bytes / 1e6 / toolUploadSeconds);
        var (downloadMbps, toolDownloadMbps) = (bytes / 1e6 / downloadSeconds, bytes / 1e6 / toolDownloadSeconds);
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

    /// <summary>
    /// The whole data path with every area remote, as a raw file and a merged file travel it: archive (root://) to cache
    /// (HTTP) as the stager copies, cache to the job's folder as the worker fetches its input, the job's folder to the
    /// output area (HTTP) as the merger writes, and the output area to the archive as the archiver copies. The tools do
    /// the same four copies with what a script needs to check both ends: xrdcp with its Adler-32 check, and curl with
    /// the local file's and the server's checksums compared (a tool cannot pipe root:// into an HTTP upload: XRootD's
    /// HTTP refuses chunked uploads, so a script lands each copy on local disk first).
    /// </summary>
    private static async Task<object> CompareChainAsync(string workDirectory, string rootUrl, string httpUrl, string source, long bytes)
    {
        var areas = ChainAreas(workDirectory, rootUrl, httpUrl);
        var folder = new LocalArea("source", new Uri(Path.GetDirectoryName(source)!));
        await StreamingCopy.CopyAsync(folder, Path.GetFileName(source), areas.Archive, "chain/source.bin", CancellationToken.None);
        var landed = Path.Combine(workDirectory, "landed.bin");
        var job = Path.Combine(workDirectory, "job.bin");
        var (mineSeconds, toolSeconds) = await BestInterleavedAsync(round => RunChainAsync(areas, "chain/source.bin", round), async round =>
        {
            await RunAsync("xrdcp", ["--nopbar", "--force", "--cksum", "adler32", $"{rootUrl}//bench/chain/archive/chain/source.bin", landed]);
            await RunAsync("curl", ["-sSf", "-T", landed, $"{httpUrl}/bench/chain/tool-cache/{round}.bin"]);
            await SameChecksumAsync(landed, $"{httpUrl}/bench/chain/tool-cache/{round}.bin");
            await RunAsync("curl", ["-sSf", "-o", job, $"{httpUrl}/bench/chain/tool-cache/{round}.bin"]);
            await SameChecksumAsync(job, $"{httpUrl}/bench/chain/tool-cache/{round}.bin");
            await RunAsync("curl", ["-sSf", "-T", job, $"{httpUrl}/bench/chain/tool-output/{round}.bin"]);
            await SameChecksumAsync(job, $"{httpUrl}/bench/chain/tool-output/{round}.bin");
            await RunAsync("curl", ["-sSf", "-o", landed, $"{httpUrl}/bench/chain/tool-output/{round}.bin"]);
            await SameChecksumAsync(landed, $"{httpUrl}/bench/chain/tool-output/{round}.bin");
            await RunAsync("xrdcp", ["--nopbar", "--force", "--cksum", "adler32", landed, $"{rootUrl}//bench/chain/tool-archive/{round}.bin"]);
        });
        var (mine, tools) = (bytes / 1e6 / mineSeconds, bytes / 1e6 / toolSeconds);
        File.Delete(landed);
        File.Delete(job);
        return new { copies = 4, mbps = Math.Round(mine), toolMbps = Math.Round(tools), ratio = Math.Round(mine / tools, 2) };
    }

    private static StorageAreas ChainAreas(string workDirectory, string rootUrl, string httpUrl) => StorageAreas.FromConfiguration(new Dictionary<string, string?>
    {
        ["archive"] = $"{rootUrl}//bench/chain/archive/",
        ["cache"] = $"{httpUrl}/bench/chain/cache/",
        ["output"] = $"{httpUrl}/bench/chain/output/",
    }, Path.Combine(workDirectory, "chain-data"));

    /// <summary>The project's four copies of one file, each checked against the checksum the next server reports.</summary>
    private static async Task RunChainAsync(StorageAreas areas, string name, int round)
    {
        var copy = $"chain/{round}.bin";
        var first = await StreamingCopy.CopyAsync(areas.Archive, name, areas.Cache, copy, CancellationToken.None);
        var fetched = await StreamingCopy.CopyAsync(areas.Cache, copy, areas.Scratch, copy, CancellationToken.None);
        var written = await StreamingCopy.CopyAsync(areas.Scratch, copy, areas.Output, copy, CancellationToken.None);
        var archived = await StreamingCopy.CopyAsync(areas.Output, copy, areas.Archive, $"chain/archived-{round}.bin", CancellationToken.None);
        if (new[] { fetched, written, archived }.Any(c => c != first))
        {
            throw new InvalidOperationException($"The chain changed the file: {first}, {fetched}, {written}, {archived}.");
        }
        areas.Scratch.Delete(copy);
        await areas.Cache.DeleteAsync(copy, CancellationToken.None);
        await areas.Output.DeleteAsync(copy, CancellationToken.None);
        await areas.Archive.DeleteAsync($"chain/archived-{round}.bin", CancellationToken.None);
    }

    /// <summary>Peak resident memory of a process that runs the project's four copies of a file of the given size.</summary>
    private static async Task<object> MeasureChainMemoryAsync(string workDirectory, string rootUrl, string httpUrl, int gibibytes)
    {
        var source = Path.Combine(workDirectory, $"source-{gibibytes}g.bin");
        await WriteRandomAsync(source, (long)gibibytes << 30);
        var areas = ChainAreas(workDirectory, rootUrl, httpUrl);
        var name = $"chain/source-{gibibytes}g.bin";
        await StreamingCopy.CopyAsync(new LocalArea("source", new Uri(workDirectory)), Path.GetFileName(source), areas.Archive, name, CancellationToken.None);
        File.Delete(source);
        var peak = await PeakMemory.OfChildAsync("chain-child", workDirectory, rootUrl, httpUrl, name);
        await areas.Archive.DeleteAsync(name, CancellationToken.None);
        return new { fileGiB = gibibytes, peakRssMb = peak };
    }

    /// <summary>In the child: the four copies of one file, then the peak RSS in MB.</summary>
    public static async Task<int> ChainChildAsync(string workDirectory, string rootUrl, string httpUrl, string name)
    {
        await RunChainAsync(ChainAreas(workDirectory, rootUrl, httpUrl), name, 0);
        PeakMemory.PrintOwnPeak();
        return 0;
    }

    /// <summary>
    /// Times the project's copy and the tool's in turn, three rounds, and keeps each side's fastest. Taking turns, with
    /// the disk's dirty pages written out before each copy, gives both sides the same machine: timed one side after the
    /// other, the second side ran while the first side's writes were still being flushed, and the ratio swung by 30%.
    /// </summary>
    private static async Task<(double Mine, double Tool)> BestInterleavedAsync(Func<int, Task> mine, Func<int, Task> tool)
    {
        var (bestMine, bestTool) = (double.MaxValue, double.MaxValue);
        for (var round = 0; round < 3; round++)
        {
            bestMine = Math.Min(bestMine, await TimeAsync(mine, round));
            bestTool = Math.Min(bestTool, await TimeAsync(tool, round));
        }
        return (bestMine, bestTool);
    }

    private static async Task<double> TimeAsync(Func<int, Task> copy, int round)
    {
        await RunAsync("sync", []);
        var watch = Stopwatch.StartNew();
        await copy(round);
        return watch.Elapsed.TotalSeconds;
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

    internal static async Task<string> RunAsync(string program, IReadOnlyList<string> arguments)
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
