using System.Security.Cryptography;
using System.Text;

namespace Pipeline.Production.Ingest;

/// <summary>
/// Name-based (version 5) UUIDs for file sagas: the same campaign and logical file name always give
/// the same id, so a duplicate or concurrent first event finds the existing saga.
/// </summary>
public static class FileIds
{
    private static readonly Guid Namespace = new("6f1c2a52-5d0e-4b8e-9a55-3c1f0e7d2b11");

    public static Guid For(string campaign, string logicalName) => NameBased(Namespace, $"{campaign}\n{logicalName}");

    public static Guid NameBased(Guid namespaceId, string name)
    {
        Span<byte> input = stackalloc byte[16];
        namespaceId.TryWriteBytes(input, bigEndian: true, out _);
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var buffer = new byte[16 + nameBytes.Length];
        input.CopyTo(buffer);
        nameBytes.CopyTo(buffer, 16);
#pragma warning disable CA5350 // RFC 4122 version 5 is defined over SHA-1; it names things, it protects nothing.
        var hash = SHA1.HashData(buffer);
#pragma warning restore CA5350
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash.AsSpan(0, 16), bigEndian: true);
    }
}
