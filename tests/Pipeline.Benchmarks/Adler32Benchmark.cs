using System.Diagnostics;
using System.Runtime.InteropServices;
using Pipeline.Infrastructure.Checksums;

namespace Pipeline.Benchmarks;

/// <summary>The project's streaming Adler-32 against zlib's adler32 on the same 256 MiB, in the same 1 MiB chunks.</summary>
public static partial class Adler32Benchmark
{
    private const int Size = 256 << 20;
    private const int Chunk = 1 << 20;

    /// <summary>Passes of each side, the best kept: a pass takes tens of milliseconds, and a neighbour's burst on a shared machine spoils single ones.</summary>
    private const int Repeats = 10;

    [LibraryImport("libz.so.1", EntryPoint = "adler32")]
    private static unsafe partial nuint ZlibAdler32(nuint adler, byte* buffer, uint length);

    public static unsafe object Run()
    {
        var data = GC.AllocateUninitializedArray<byte>(Size, pinned: true);
        new Random(42).NextBytes(data);

        uint ours = 0;
        var oursSeconds = BestOf(Repeats, () =>
        {
            using var stream = new ChecksummingStream(Stream.Null);
            for (var offset = 0; offset < Size; offset += Chunk)
            {
                stream.Write(data, offset, Chunk);
            }
            ours = stream.Adler32;
        });

        nuint zlib = 0;
        var zlibSeconds = BestOf(Repeats, () =>
        {
            fixed (byte* start = data)
            {
                var adler = ZlibAdler32(0, null, 0);
                for (var offset = 0; offset < Size; offset += Chunk)
                {
                    adler = ZlibAdler32(adler, start + offset, Chunk);
                }
                zlib = adler;
            }
        });

        // The ceiling: reading the same bytes and doing nothing but adding them up.
        ulong sink = 0;
        var readSeconds = BestOf(Repeats, () => sink = SumAll(data));
        GC.KeepAlive(sink);

        if (ours != (uint)zlib)
        {
            throw new InvalidOperationException($"Adler-32 disagrees with zlib: {ours:x8} vs {(uint)zlib:x8}");
        }
        var mbps = Size / 1e6 / oursSeconds;
        var zlibMbps = Size / 1e6 / zlibSeconds;
        return new
        {
            mbps = Math.Round(mbps),
            zlibMbps = Math.Round(zlibMbps),
            ratio = Math.Round(mbps / zlibMbps, 2),
            memoryReadMbps = Math.Round(Size / 1e6 / readSeconds),
            vector512 = System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated,
        };
    }

    /// <summary>Adds up every 64-bit word of the buffer: a read of all of it at memory speed, compiled as optimised as the checksum is.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static ulong SumAll(byte[] data)
    {
        var total = System.Runtime.Intrinsics.Vector256<ulong>.Zero;
        foreach (var vector in MemoryMarshal.Cast<byte, System.Runtime.Intrinsics.Vector256<ulong>>(data))
        {
            total += vector;
        }
        return total[0];
    }

    public static double BestOf(int times, Action action)
    {
        var best = double.MaxValue;
        for (var i = 0; i < times; i++)
        {
            var watch = Stopwatch.StartNew();
            action();
            best = Math.Min(best, watch.Elapsed.TotalSeconds);
        }
        return best;
    }
}
