using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using Pipeline.EventFormat;
using Pipeline.Infrastructure.Checksums;

namespace Pipeline.Benchmarks;

/// <summary>`make microbench`: the inner loops, with BenchmarkDotNet's statistics (in-process, no generated projects).</summary>
public static class MicroBenchmarks
{
    public static IConfig Config => ManualConfig.Create(DefaultConfig.Instance)
        .AddJob(Job.ShortRun.WithToolchain(InProcessEmitToolchain.Instance))
        .WithOptions(ConfigOptions.DisableOptimizationsValidator);
}

/// <summary>Checksumming while writing, by chunk size: what a copy pays per call into the hash.</summary>
[MemoryDiagnoser]
public class ChecksumChunks
{
    private byte[] _data = [];

    [Params(4 << 10, 64 << 10, 1 << 20)]
    public int Chunk { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _data = new byte[64 << 20];
        new Random(1).NextBytes(_data);
    }

    [Benchmark]
    public uint ChecksummingStreamWrite()
    {
        using var stream = new ChecksummingStream(Stream.Null);
        for (var offset = 0; offset < _data.Length; offset += Chunk)
        {
            stream.Write(_data, offset, Chunk);
        }
        return stream.Adler32;
    }
}

/// <summary>The k-way merge's cost per event, by number of inputs, on in-memory event files.</summary>
[MemoryDiagnoser]
public class MergeInnerLoop
{
    private byte[][] _inputs = [];

    [Params(2, 16, 256)]
    public int Inputs { get; set; }

    private const int EventsPerInput = 100_000 / 16;

    [GlobalSetup]
    public void Setup()
    {
        var payload = new byte[64];
        _inputs = [.. Enumerable.Range(0, Inputs).Select(input =>
        {
            using var stream = new MemoryStream();
            var writer = EventWriter.CreateAsync(stream, leaveOpen: true).GetAwaiter().GetResult();
            for (var i = 0; i < EventsPerInput; i++)
            {
                // Interleaved event numbers, so the heap really has to choose at every step.
                writer.WriteAsync(new EventRecord(1, 1, (long)i * Inputs + input, 1, payload)).AsTask().GetAwaiter().GetResult();
            }
            writer.DisposeAsync().AsTask().GetAwaiter().GetResult();
            return stream.ToArray();
        })];
    }

    [Benchmark]
    public Task<long> Merge() =>
        EventMerge.MergeAsync([.. _inputs.Select(bytes => (Stream)new MemoryStream(bytes, writable: false))], Stream.Null);
}
