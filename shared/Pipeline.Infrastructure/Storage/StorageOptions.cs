namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// Where the storage areas live. Each area is a file:// URI; an area not configured defaults to
/// a folder of that name under the data directory.
/// </summary>
public sealed class StorageOptions
{
    public const string Section = "Pipeline:Areas";

    public static readonly IReadOnlyList<string> KnownAreas = [Archive, Cache, Scratch, Output, Logs];

    public const string Archive = "archive";
    public const string Cache = "cache";
    public const string Scratch = "scratch";
    public const string Output = "output";
    public const string Logs = "logs";
}

/// <summary>The storage areas of this deployment, by name.</summary>
public sealed class StorageAreas
{
    private readonly Dictionary<string, StorageArea> _areas;

    public StorageAreas(IEnumerable<StorageArea> areas)
    {
        _areas = areas.ToDictionary(a => a.Name, StringComparer.Ordinal);
    }

    public StorageArea this[string name] =>
        _areas.TryGetValue(name, out var area)
            ? area
            : throw new KeyNotFoundException($"No storage area named '{name}' is configured.");

    public StorageArea Archive => this[StorageOptions.Archive];
    public StorageArea Cache => this[StorageOptions.Cache];
    public StorageArea Scratch => this[StorageOptions.Scratch];
    public StorageArea Output => this[StorageOptions.Output];
    public StorageArea Logs => this[StorageOptions.Logs];

    public IEnumerable<StorageArea> All => _areas.Values;

    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out StorageArea? area) => _areas.TryGetValue(name, out area);

    /// <param name="extra">Further areas that must exist (archive areas held in folders), defaulting like the known ones.</param>
    public static StorageAreas FromConfiguration(IReadOnlyDictionary<string, string?> configured, string dataDirectory, IEnumerable<string>? extra = null)
    {
        var areas = new List<StorageArea>();
        foreach (var name in StorageOptions.KnownAreas.Concat(configured.Keys).Concat(extra ?? []).Distinct(StringComparer.Ordinal))
        {
            var location = configured.TryGetValue(name, out var uri) && !string.IsNullOrWhiteSpace(uri)
                ? new Uri(uri, UriKind.Absolute)
                : new Uri(Path.GetFullPath(Path.Combine(dataDirectory, name)));
            areas.Add(new StorageArea(name, location));
        }
        return new StorageAreas(areas);
    }
}
