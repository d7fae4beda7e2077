using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Pipeline.Production.Audit;

/// <summary>
/// What a merged file is made of, carried with it into the catalog: every raw file it holds events of (with the
/// raw file's Adler-32), the events each contributed (first, last, how many), the release and calibration that
/// made them, and a digest over all of it. From these alone an audit can tell whether every raw file of a
/// campaign reached each dataset that selects it exactly once.
/// </summary>
public sealed record MergeManifest(
    int Version,
    string Name,
    string Campaign,
    string Dataset,
    string? Release,
    string? Calibration,
    long Size,
    string Adler32,
    long Events,
    IReadOnlyList<ManifestSource> Sources,
    string Digest = "")
{
    public const int CurrentVersion = 1;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The manifest with its digest set: SHA-256 of its JSON with the digest left empty.</summary>
    public MergeManifest Sealed() => this with { Digest = DigestOf(this) };

    /// <summary>True if the digest matches the content (nothing was changed since it was sealed).</summary>
    public bool DigestHolds => Digest.Length > 0 && string.Equals(Digest, DigestOf(this), StringComparison.Ordinal);

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a manifest; null if the text is not one.</summary>
    public static MergeManifest? Parse(string? json)
    {
        if (string.IsNullOrEmpty(json))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<MergeManifest>(json, Json);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string DigestOf(MergeManifest manifest) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(manifest with { Digest = "" }, Json))));
}

/// <summary>One output in a merged file: which raw file it came from and which of that file's events it holds.</summary>
public sealed record ManifestSource(
    string RawName,
    string RawAdler32,
    Guid FileId,
    int Run,
    string Stream,
    int Section,
    string OutputId,
    long Events,
    long FirstEvent,
    long LastEvent);
