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
