using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pipeline.Infrastructure.Checksums;

/// <summary>
/// Adler-32 over 64 bytes a step with AVX-512: the plain sum of a step's bytes by SAD against zero, the weighted sum
/// (weights 64 down to 1) by two multiply-adds, and the running sum of the plain sums for the rest of the second
/// half. Where AVX-512 is not there, System.IO.Hashing's implementation does the work. The value is the standard
/// one (RFC 1950), checked against zlib and System.IO.Hashing by the tests.
/// </summary>
public static class Adler32Vectorised
{
    private const uint Modulus = 65521;

    /// <summary>Bytes between reductions modulo 65521: 86 steps keeps every lane and the block's sums far from overflow.</summary>
    private const int BlockBytes = 86 * 64;

    /// <summary>The scalar bound (zlib's NMAX): the most bytes whose sums fit 32 bits before a reduction.</summary>
    private const int ScalarBlockBytes = 5552;

    public static bool IsAccelerated => Avx512BW.IsSupported;

    /// <summary>The Adler-32 of what came before (1 for nothing yet) extended by <paramref name="data"/>.</summary>
    // Compiled optimised from the first call: every byte the pipeline moves passes here, and the tiered JIT's first
    // versions of this loop run at a fraction of the speed.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static uint Update(uint adler, ReadOnlySpan<byte> data)
    {
        if (!Avx512BW.IsSupported)
        {
            return data.Length < 64 ? Scalar(adler, data) : Combine(adler, System.IO.Hashing.Adler32.HashToUInt32(data), data.Length);
        }
        if (data.Length < 64)
        {
            return Scalar(adler, data);
        }
        ulong s1 = adler & 0xFFFF;
        ulong s2 = adler >> 16;
        var whole = data.Length & ~63;
        ref var start = ref MemoryMarshal.GetReference(data);
        var weights = Vector512.Create(
            (sbyte)64, 63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33,
            32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
        var ones = Vector512.Create((short)1);
        for (var offset = 0; offset < whole; )
        {
            var steps = Math.Min(whole - offset, BlockBytes) / 64;
            var plain = Vector512<ulong>.Zero;
            var running = Vector512<ulong>.Zero;
            var weighted = Vector512<int>.Zero;
            var step = 0;
            // Two steps at a time: the second step's running sum includes the first's plain sum.
            for (; step + 1 < steps; step += 2, offset += 128)
            {
                var first = Vector512.LoadUnsafe(ref Unsafe.Add(ref start, offset));
                var second = Vector512.LoadUnsafe(ref Unsafe.Add(ref start, offset + 64));
                var firstPlain = Avx512BW.SumAbsoluteDifferences(first, Vector512<byte>.Zero).AsUInt64();
                var secondPlain = Avx512BW.SumAbsoluteDifferences(second, Vector512<byte>.Zero).AsUInt64();
                running += plain + plain + firstPlain;
                plain += firstPlain + secondPlain;
                weighted += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(first, weights), ones)
                    + Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(second, weights), ones);
            }
            for (; step < steps; step++, offset += 64)
            {
                var bytes = Vector512.LoadUnsafe(ref Unsafe.Add(ref start, offset));
                running += plain;
                plain += Avx512BW.SumAbsoluteDifferences(bytes, Vector512<byte>.Zero).AsUInt64();
                weighted += Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(bytes, weights), ones);
            }
            // s2 gains the block's length times s1 as it stood, 64 times each step's earlier plain sums, and the weighted sums.
            s2 += (ulong)steps * 64 * s1 + 64 * Vector512.Sum(running) + (ulong)Vector512.Sum(weighted.AsUInt32());
            s1 += Vector512.Sum(plain);
            s1 %= Modulus;
            s2 %= Modulus;
        }
        return Scalar((uint)(s2 << 16 | s1), data[whole..]);
    }

    /// <summary>The Adler-32 of A followed by B, from A's, B's (computed on its own, from 1) and B's length.</summary>
    public static uint Combine(uint first, uint second, long secondLength)
    {
        // With B's sums taken from (1, 0): s1 = s1A + s1B - 1 and s2 = s2A + s2B + n·s1A - n, modulo 65521.
        ulong n = (ulong)(secondLength % Modulus);
        ulong s1A = first & 0xFFFF, s2A = first >> 16, s1B = second & 0xFFFF, s2B = second >> 16;
        var s1 = (s1A + s1B + Modulus - 1) % Modulus;
        var s2 = (s2A + s2B + n * s1A + Modulus - n) % Modulus;
        return (uint)(s2 << 16 | s1);
    }

    private static uint Scalar(uint adler, ReadOnlySpan<byte> data)
    {
        uint s1 = adler & 0xFFFF;
        uint s2 = adler >> 16;
        while (data.Length > 0)
        {
            var block = data[..Math.Min(data.Length, ScalarBlockBytes)];
            foreach (var b in block)
            {
                s1 += b;
                s2 += s1;
            }
            s1 %= Modulus;
            s2 %= Modulus;
            data = data[block.Length..];
        }
        return s2 << 16 | s1;
    }
}
