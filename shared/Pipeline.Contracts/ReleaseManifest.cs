using System.Globalization;
using System.Text.Json;

namespace Pipeline.Contracts;

/// <summary>
/// The interface between the pipeline and a reconstruction release, besides its argument list: how the datasets it
/// writes are named to it (<c>{datasets}</c>, "name:mask,name:mask") and the manifest it writes beside its outputs
/// (<see cref="FileName"/>, a JSON array of <see cref="ReleaseOutput"/>), from which the worker learns what it made.
/// </summary>
public static class ReleaseManifest
{
    public const string FileName = "outputs.json";

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary>The datasets as a release is given them: "name:mask,name:mask", masks in decimal.</summary>
    public static string FormatDatasets(IEnumerable<DatasetSelection> datasets) =>
        string.Join(',', datasets.Select(d => string.Create(CultureInfo.InvariantCulture, $"{d.Name}:{d.TriggerMask}")));

    /// <summary>Parses "name:mask,name:mask" (masks decimal or 0x-hex), as a release reads its datasets.</summary>
    public static IReadOnlyList<DatasetSelection> ParseDatasets(string text) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(part =>
        {
            var colon = part.IndexOf(':', StringComparison.Ordinal);
            if (colon <= 0)
            {
                throw new FormatException($"Dataset '{part}' is not name:mask.");
            }
            var maskText = part[(colon + 1)..];
            var mask = maskText.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
                ? uint.Parse(maskText.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture)
                : uint.Parse(maskText, CultureInfo.InvariantCulture);
            return new DatasetSelection(part[..colon], mask);
        })];
}
