namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// A storage area in front of tape (an XRootD path under a residency manager, CTA's disk buffer): a file may be on tape
/// only and must be brought online before it is read, and a file written counts as safe only once the endpoint says it
/// is on tape.
/// </summary>
public interface INearlineArea
{
    /// <summary>Where a file is, as the endpoint says; null when it has no such file.</summary>
    Task<Residency?> ResidencyAsync(string name, CancellationToken cancellationToken);

    /// <summary>Asks the endpoint to bring files online, in the order given.</summary>
    Task RequestOnlineAsync(IReadOnlyList<string> names, CancellationToken cancellationToken);

    /// <summary>Asks the endpoint to drop the disk copies of files that are on tape (what its purge does when space runs short).</summary>
    Task EvictAsync(IReadOnlyList<string> names, CancellationToken cancellationToken);
}

/// <summary>A file on a nearline endpoint: its size, whether it can be read now, and its tape copy if the endpoint knows one.</summary>
public sealed record Residency(long Size, bool Online, TapeCopy? OnTape);

/// <summary>
/// A tape copy as the endpoint reports it. Volume, size and Adler-32 when the endpoint records them (the attribute
/// <see cref="Attribute"/>); all null when it only says a copy exists (XRootD's backup-exists flag, as CTA sets it).
/// </summary>
public sealed record TapeCopy(string? Volume, long? Size, string? Adler32)
{
    /// <summary>The file attribute a tape system writes once the file is on tape: "volume=V size=N adler32=X".</summary>
    public const string Attribute = "tape.copy";

    public static TapeCopy? Parse(string? attribute)
    {
        if (string.IsNullOrWhiteSpace(attribute))
        {
            return null;
        }
        var fields = attribute.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(f => f.Split('=', 2)).Where(f => f.Length == 2)
            .GroupBy(f => f[0], StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First()[1], StringComparer.Ordinal);
        return new TapeCopy(
            fields.GetValueOrDefault("volume"),
            fields.TryGetValue("size", out var size) && long.TryParse(size, System.Globalization.CultureInfo.InvariantCulture, out var bytes) ? bytes : null,
            fields.GetValueOrDefault("adler32"));
    }
}
