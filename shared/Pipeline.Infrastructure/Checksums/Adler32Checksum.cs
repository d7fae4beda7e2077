using System.Buffers;
using System.Globalization;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Infrastructure.Checksums;

/// <summary>
/// Adler-32, the checksum of the field's archives, written as eight lower-case hex digits.
/// Computed by <see cref="Adler32Vectorised"/> (AVX-512 where the processor has it, System.IO.Hashing's otherwise).
/// </summary>
public static class Adler32Checksum
{
    public static string Format(uint value) => value.ToString("x8", CultureInfo.InvariantCulture);

    public static bool TryParse(string? text, out uint value)
    {
        value = 0;
        return text is { Length: 8 }
            && text.All(Uri.IsHexDigit)
            && uint.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    public static uint Parse(string text) =>
        TryParse(text, out var value) ? value : throw new FormatException($"'{text}' is not an adler32 checksum (8 hexadecimal digits).");

    public static bool IsWellFormed(string? text) => TryParse(text, out _);

    /// <summary>Two textual checksums name the same value (case of the hex digits aside).</summary>
    public static bool Same(string a, string b) =>
        TryParse(a, out var x) && TryParse(b, out var y) && x == y;

    public static uint Of(ReadOnlySpan<byte> bytes) => Adler32Vectorised.Update(1, bytes);

    /// <summary>Reads a stream to its end and returns its length and checksum.</summary>
    public static async Task<(long Size, uint Adler32)> OfStreamAsync(Stream stream, CancellationToken cancellationToken)
    {
        using var hashing = new ChecksummingStream(stream, leaveOpen: true);
        var buffer = ArrayPool<byte>.Shared.Rent(StreamingCopy.BufferSize);
        try
        {
            while (await hashing.ReadAsync(buffer, cancellationToken) > 0)
            {
            }
            return (hashing.Length, hashing.Adler32);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
