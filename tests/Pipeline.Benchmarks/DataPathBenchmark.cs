using System.Diagnostics;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Merger;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Benchmarks;

/// <summary>
/// Bytes through stage-in → pass-through reconstruction → merge → archive (with every checksum and
/// the archive's read-back), against `cp` (+ `sync` of each copy, as the pipeline flushes each file)
/// moving the same bytes between the same areas.
/// Pipeline: 5 reads (the last from the disk) and 4 writes of every byte; cp: 4 reads and 4 writes.
/// </summary>
public static class DataPathBenchmark
{
    private const int PipelineReads = 5;
    private const int PipelineWrites = 4;
    private const int CpReads = 4;
    private const int CpWrites = 4;

    public static async Task<object> RunAsync(string workDirectory, int megabytes)
    {
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), workDirectory);
        const int eventsPerFile = 2048;
        const int payload = 4096;
        var filesPerStream = Math.Max(1, megabytes * (1 << 20) / (eventsPerFile * (payload + 24)) / 2);
        var runs = await SampleGenerator.GenerateAsync(areas.Archive.RootPath,
            new SampleSpec(Runs: 1, FilesPerStream: filesPerStream, EventsPerFile: eventsPerFile, PayloadBytes: payload, Seed: 3));
        // Flat names, so that cp can move a whole step in one call, as the pipeline does in one process.
        var raw = runs[0].Files!.Select((f, i) =>
        {
            var flat = $"rawflat/f{i:D4}.evt";
            Directory.CreateDirectory(Path.GetDirectoryName(areas.Archive.PathOf(flat))!);
            File.Move(areas.Archive.PathOf(f.Name!), areas.Archive.PathOf(flat));
            return f with { Name = flat };
        }).ToList();
        var bytes = raw.Sum(f => f.Size);

        double pipelineSeconds = double.MaxValue, cpSeconds = double.MaxValue;
        var phases = new Dictionary<string, double>();
        for (var round = 0; round < 2; round++)
        {
            var roundPhases = new Dictionary<string, double>();
            var seconds = await TimePipelineAsync(areas, raw, roundPhases);
            if (seconds < pipelineSeconds)
            {
                (pipelineSeconds, phases) = (seconds, roundPhases);
            }
            cpSeconds = Math.Min(cpSeconds, await TimeCpAsync(areas, raw));
        }
        foreach (var area in new[] { areas.Cache, areas.Scratch, areas.Output })
        {
            area.DeleteDirectory("bench");
        }
        areas.Archive.DeleteDirectory("bench");
        areas.Archive.DeleteDirectory("raw");
        areas.Archive.DeleteDirectory("rawflat");

        var mbps = bytes / 1e6 / pipelineSeconds;
        var cpMbps = bytes / 1e6 / cpSeconds;
        var ratio = (PipelineReads + PipelineWrites) / pipelineSeconds / ((CpReads + CpWrites) / cpSeconds);
        return new
        {
            mbps = Math.Round(mbps),
            cpMbps = Math.Round(cpMbps),
            ratio = Math.Round(ratio, 2),
            bytes,
            files = raw.Count,
            passes = new { pipelineReads = PipelineReads, pipelineWrites = PipelineWrites, cpReads = CpReads, cpWrites = CpWrites },
            // Where the pipeline's time went, in its best round.
            phaseSeconds = phases.ToDictionary(p => p.Key, p => Math.Round(p.Value, 2)),
        };
    }

    private static async Task<double> TimePipelineAsync(StorageAreas areas, List<Pipeline.Contracts.RawFileRecord> raw, Dictionary<string, double> phases)
    {
        void Add(string phase, long since) => phases[phase] = phases.GetValueOrDefault(phase) + Stopwatch.GetElapsedTime(since).TotalSeconds;
        await StartEvenAsync(areas, raw);
        var watch = Stopwatch.StartNew();
        var outputs = new List<MergeInput>();
        for (var i = 0; i < raw.Count; i++)
        {
            var name = $"bench/f{i:D4}.evt";
            // Stage-in: archive → cache, verified against the catalogued checksum.
            var at = Stopwatch.GetTimestamp();
            var (size, adler) = await StreamingCopy.CopyAsync(areas.Archive, raw[i].Name!, areas.Cache, name, CancellationToken.None);
            Add("stageIn", at);
            if (!Adler32Checksum.Same(Adler32Checksum.Format(adler), raw[i].Adler32!))
            {
                throw new InvalidDataException("stage-in checksum mismatch");
            }
            // A reconstruction that passes its input through: cache → scratch, checksummed as written.
            at = Stopwatch.GetTimestamp();
            (size, adler) = await StreamingCopy.CopyAsync(areas.Cache, name, areas.Scratch, name, CancellationToken.None);
            Add("passThrough", at);
            outputs.Add(new MergeInput(name, size, Adler32Checksum.Format(adler), raw[i].Events));
        }
        const int inputsPerMerge = 16;
        for (var batch = 0; batch * inputsPerMerge < outputs.Count; batch++)
        {
            var inputs = outputs.Skip(batch * inputsPerMerge).Take(inputsPerMerge).ToList();
            var merged = $"bench/merged-{batch:D3}.evt";
            var at = Stopwatch.GetTimestamp();
            var (size, adler, _) = await MergedFileWriter.WriteAsync(areas.Scratch, inputs, areas.Output, merged, CancellationToken.None);
            Add("merge", at);
            // Archive: copy, then read the archive's bytes back before trusting them.
            at = Stopwatch.GetTimestamp();
            var copied = await StreamingCopy.CopyAsync(areas.Output, merged, areas.Archive, merged, CancellationToken.None);
            Add("archive", at);
            at = Stopwatch.GetTimestamp();
            // As the archiver does: from the disk, not from the copy's pages in memory.
            areas.Archive.LetGoOfCachedPages(merged);
            var reread = await areas.Archive.ChecksumAsync(merged, CancellationToken.None);
            Add("readBack", at);
            if (copied != (size, adler) || reread != (size, adler))
            {
                throw new InvalidDataException("archive verification failed");
            }
        }
        return watch.Elapsed.TotalSeconds;
    }

    private static async Task<double> TimeCpAsync(StorageAreas areas, List<Pipeline.Contracts.RawFileRecord> raw)
    {
        var steps = new[] { (areas.Archive, areas.Cache), (areas.Cache, areas.Scratch), (areas.Scratch, areas.Output), (areas.Output, areas.Archive) };
        await StartEvenAsync(areas, raw);
        foreach (var area in new[] { areas.Cache, areas.Scratch, areas.Output, areas.Archive })
        {
            Directory.CreateDirectory(area.PathOf("bench"));
        }
        var names = Enumerable.Range(0, raw.Count).Select(i => $"f{i:D4}.evt").ToList();
        var watch = Stopwatch.StartNew();
        var source = "rawflat";
        foreach (var (from, to) in steps)
        {
            await Run("cp", ["-t", to.PathOf("bench"), .. names.Select(n => from.PathOf($"{source}/{n}"))]);
            await Run("sync", [.. names.Select(n => to.PathOf($"bench/{n}"))]);
            source = "bench";
        }
        return watch.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// The same start for either side: the other side's files gone and on disk, the raw files in the page cache
    /// (both sides read them warm), and a pause. The pause matters on a virtual machine that hands freed memory
    /// back to its host after a couple of seconds (free page reporting): memory freed just before a run is quick
    /// to write into and memory handed back is several times slower, so without it whichever side ran right
    /// after the other's files were deleted would be measured on faster memory.
    /// </summary>
    private static async Task StartEvenAsync(StorageAreas areas, List<Pipeline.Contracts.RawFileRecord> raw)
    {
        foreach (var area in new[] { areas.Cache, areas.Scratch, areas.Output, areas.Archive })
        {
            area.DeleteDirectory("bench");
        }
        await Run("sync");
        foreach (var file in raw)
        {
            await using var stream = areas.Archive.OpenRead(file.Name!);
            await stream.CopyToAsync(Stream.Null);
        }
        await Task.Delay(TimeSpan.FromSeconds(5));
    }

    public static async Task Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} failed: {error}");
        }
    }
}
