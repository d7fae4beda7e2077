using System.Text;
using Pipeline.Infrastructure.Checksums;

namespace Pipeline.Tests.Infrastructure;

public class When_computing_adler32
{
    [Theory]
    [InlineData("", "00000001")]
    [InlineData("a", "00620062")]
    [InlineData("abc", "024d0127")]
    [InlineData("Wikipedia", "11e60398")]
    [InlineData("message digest", "29750586")]
    [InlineData("abcdefghijklmnopqrstuvwxyz", "90860b20")]
    public void Should_match_the_published_vectors(string text, string expected)
    {
        Assert.Equal(expected, Adler32Checksum.Format(Adler32Checksum.Of(Encoding.ASCII.GetBytes(text))));
    }

    [Fact]
    public async Task Should_give_the_same_value_streamed_in_uneven_chunks_as_in_one_pass()
    {
        var data = new byte[5_000_003];
        new Random(7).NextBytes(data);
        var whole = Adler32Checksum.Of(data);

        using var target = new MemoryStream();
        await using (var hashing = new ChecksummingStream(target, leaveOpen: true))
        {
            var offset = 0;
            var size = 1;
            while (offset < data.Length)
            {
                var take = Math.Min(size, data.Length - offset);
                await hashing.WriteAsync(data.AsMemory(offset, take));
                offset += take;
                size = size * 3 + 1;
            }
            Assert.Equal(whole, hashing.Adler32);
            Assert.Equal(data.Length, hashing.Length);
        }
        Assert.Equal(data, target.ToArray());
    }

    [Fact]
    public async Task Should_checksum_a_stream_while_reading_it()
    {
        var data = Encoding.ASCII.GetBytes("Wikipedia");
        var (size, adler) = await Adler32Checksum.OfStreamAsync(new MemoryStream(data), CancellationToken.None);
        Assert.Equal(9, size);
        Assert.Equal("11e60398", Adler32Checksum.Format(adler));
    }

    [Theory]
    [InlineData("11e60398", true)]
    [InlineData("11E60398", true)]
    [InlineData("11e6039", false)]
    [InlineData("11e603980", false)]
    [InlineData("11e6039g", false)]
    [InlineData("+1e60398", false)]
    [InlineData(" 1e60398", false)]
    [InlineData(null, false)]
    public void Should_accept_only_eight_hex_digits(string? text, bool wellFormed)
    {
        Assert.Equal(wellFormed, Adler32Checksum.IsWellFormed(text));
    }
}

public partial class When_computing_adler32_with_the_vectorised_implementation
{
    [System.Runtime.InteropServices.LibraryImport("libz.so.1", EntryPoint = "adler32")]
    private static unsafe partial nuint ZlibAdler32(nuint adler, byte* buffer, uint length);

    private static unsafe uint Zlib(uint adler, ReadOnlySpan<byte> data)
    {
        fixed (byte* start = data)
        {
            return (uint)ZlibAdler32(adler, start, (uint)data.Length);
        }
    }

    [Fact]
    public void Should_agree_with_system_io_hashing_at_every_length_and_alignment_around_its_blocks()
    {
        var data = new byte[3 * 5504 + 300];
        new Random(11).NextBytes(data);
        foreach (var length in Enumerable.Range(0, 200).Concat([5503, 5504, 5505, 5551, 5552, 5553, 11008, 11072, data.Length - 1]))
        {
            foreach (var start in new[] { 0, 1, 7, 63 })
            {
                var slice = data.AsSpan(start, Math.Min(length, data.Length - start));
                Assert.Equal(System.IO.Hashing.Adler32.HashToUInt32(slice), Adler32Vectorised.Update(1, slice));
            }
        }
    }

    [Fact]
    public void Should_not_overflow_on_bytes_that_are_all_255()
    {
        // The worst case for every sum: the largest bytes, over many blocks.
        var data = Enumerable.Repeat((byte)255, 1 << 20).ToArray();
        Assert.Equal(System.IO.Hashing.Adler32.HashToUInt32(data), Adler32Vectorised.Update(1, data));
    }

    [SkippableFact]
    public void Should_agree_with_zlib_when_extended_chunk_by_chunk_and_when_combined()
    {
        Skip.IfNot(System.Runtime.InteropServices.NativeLibrary.TryLoad("libz.so.1", out _), "zlib (libz.so.1) is not installed here to compare with.");
        var data = new byte[1 << 20];
        new Random(3).NextBytes(data);
        uint ours = 1, zlib = 1;
        var random = new Random(5);
        for (var offset = 0; offset < data.Length; )
        {
            var take = Math.Min(random.Next(1, 70_000), data.Length - offset);
            ours = Adler32Vectorised.Update(ours, data.AsSpan(offset, take));
            zlib = Zlib(zlib, data.AsSpan(offset, take));
            Assert.Equal(zlib, ours);
            offset += take;
        }
        var half = data.Length / 3;
        Assert.Equal(zlib, Adler32Vectorised.Combine(Adler32Vectorised.Update(1, data.AsSpan(0, half)), Adler32Vectorised.Update(1, data.AsSpan(half)), data.Length - half));
    }
}
