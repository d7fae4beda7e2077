using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Merger;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Benchmarks;

/// <summary>
/// Peak resident memory of a process that merges N GiB of outputs into 1 GiB files, for N and 2N:
/// the merge streams, so the peak should not follow the input.
/// </summary>
public static class MergeMemoryBenchmark
{
    private const int InputsPerMergedFile = 16;

    public static async Task<object> RunAsync(string workDirectory, int gibibytes)
    {
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), workDirectory);
        // 64 MiB inputs: 16 make one 1 GiB merged file.
        const int eventsPerFile = 2048;
        const int payload = 32 * 1024 - 24;
        var inputs = gibibytes * 16;
        var runs = await SampleGenerator.GenerateAsync(areas.Scratch.RootPath,
            new SampleSpec(Runs: 1, Streams: ["physics"], FilesPerStream: inputs, EventsPerFile: eventsPerFile, PayloadBytes: payload, Seed: 9));
        var files = runs[0].Files!;

        var half = await MeasureChildAsync(workDirectory, files.Count / 2);
        var full = await MeasureChildAsync(workDirectory, files.Count);
        areas.Scratch.DeleteDirectory("raw");
        areas.Output.DeleteDirectory("merged");
        return new
        {
            mergeBytes = files.Sum(f => f.Size),
            peakRssMb = full,
            peakRssMbHalfInput = half,
            inputs = files.Count,
        };
    }

    private static Task<double> MeasureChildAsync(string workDirectory, int inputs) =>
        PeakMemory.OfChildAsync("merge-child", workDirectory, inputs.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>In the child: merge the first <paramref name="inputs"/> files and print the peak RSS in MB.</summary>
    public static async Task<int> ChildAsync(string workDirectory, int inputs)
    {
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), workDirectory);
        var files = Directory.EnumerateFiles(areas.Scratch.PathOf("raw"), "*.raw", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal).Take(inputs)
            .Select(path => Path.GetRelativePath(areas.Scratch.RootPath, path))
            .ToList();
        var described = new List<MergeInput>();
        foreach (var name in files)
        {
            // Sizes and checksums as a reconstruction would have reported them (not part of the measurement's point).
            var (size, adler) = await areas.Scratch.ChecksumAsync(name, CancellationToken.None);
            described.Add(new MergeInput(name, size, Adler32Checksum.Format(adler), 2048));
        }
        for (var batch = 0; batch * InputsPerMergedFile < described.Count; batch++)
        {
            var group = described.Skip(batch * InputsPerMergedFile).Take(InputsPerMergedFile).ToList();
            await MergedFileWriter.WriteAsync(areas.Scratch, group, areas.Output, $"merged/m{batch:D3}.evt", CancellationToken.None);
        }
        PeakMemory.PrintOwnPeak();
        return 0;
    }
}
