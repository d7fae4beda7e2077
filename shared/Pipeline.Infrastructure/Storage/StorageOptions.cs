using Pipeline.Infrastructure.Storage.Gfal;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Infrastructure.Storage.Xrootd;

namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// Where the storage areas live. Each area is a URL whose scheme gives its kind: file:// (a folder), root:// (XRootD),
/// https:// or davs:// (HTTP/WebDAV; http:// and dav:// for a closed test bench). An area not configured defaults to
/// a folder of that name under the data directory. Scratch holds the releases' job folders on the worker's own host and
/// is always a folder; what a job makes leaves that host through the unmerged area, where it waits for the merger.
/// </summary>
public sealed class StorageOptions
{
    public const string Section = "Pipeline:Areas";

    public static readonly IReadOnlyList<string> KnownAreas = [Archive, Cache, Scratch, Unmerged, Output, Logs];

    public const string Archive = "archive";
    public const string Cache = "cache";
    public const string Scratch = "scratch";

    /// <summary>Reconstruction outputs between the worker that made them and the merged file they go into (CMS's /store/unmerged).</summary>
    public const string Unmerged = "unmerged";
    public const string Output = "output";
    public const string Logs = "logs";
}

/// <summary>How remote areas are reached (section <c>Pipeline:Storage</c>).</summary>
public sealed class RemoteStorageOptions
{
    public const string Section = "Pipeline:Storage";

    /// <summary>The longest one request or copy may take (a 2 GB file at 20 MB/s takes 100 s).</summary>
    public int TimeoutSeconds { get; set; } = 900;

    public int ConnectTimeoutSeconds { get; set; } = 15;

    /// <summary>The longest an XRootD server may leave one request (a piece of a file) unanswered before the copy fails.</summary>
    public int RequestTimeoutSeconds { get; set; } = 60;

    /// <summary>Connections kept open to one server: the transfers that run at once to it.</summary>
    public int MaxConnectionsPerServer { get; set; } = 16;

    /// <summary>
    /// Where a write to an HTTP area whose length is not known beforehand (a merged file as it is made) is spooled
    /// before its upload; defaults to "spool" under the data directory.
    /// </summary>
    public string? SpoolPath { get; set; }

    /// <summary>Per remote area: CAs, credentials (as file paths) and the hosts a redirect may go to.</summary>
    public Dictionary<string, AreaAccessOptions> Access { get; set; } = new(StringComparer.Ordinal);
}

/// <summary>The storage areas of this deployment, by name.</summary>
public sealed class StorageAreas
{
    private readonly Dictionary<string, StorageArea> _areas;

    public StorageAreas(IEnumerable<StorageArea> areas)
    {
        _areas = areas.ToDictionary(a => a.Name, StringComparer.Ordinal);
        if (_areas.TryGetValue(StorageOptions.Scratch, out var scratch) && scratch is not LocalArea)
        {
            throw new ArgumentException(
                $"The scratch area holds the releases' job folders on this host and must be a file:// folder, not {scratch.Location.Scheme}://.");
        }
    }

    public StorageArea this[string name] =>
        _areas.TryGetValue(name, out var area)
            ? area
            : throw new KeyNotFoundException($"No storage area named '{name}' is configured.");

    public StorageArea Archive => this[StorageOptions.Archive];
    public StorageArea Cache => this[StorageOptions.Cache];
    public LocalArea Scratch => (LocalArea)this[StorageOptions.Scratch];
    public StorageArea Unmerged => this[StorageOptions.Unmerged];
    public StorageArea Output => this[StorageOptions.Output];
    public StorageArea Logs => this[StorageOptions.Logs];

    public IEnumerable<StorageArea> All => _areas.Values;

    public bool TryGet(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out StorageArea? area) => _areas.TryGetValue(name, out area);

    /// <param name="extra">Further areas that must exist (archive areas held in folders), defaulting like the known ones.</param>
    public static StorageAreas FromConfiguration(
        IReadOnlyDictionary<string, string?> configured, string dataDirectory, IEnumerable<string>? extra = null, RemoteStorageOptions? remote = null)
    {
        remote ??= new RemoteStorageOptions();
        var connections = new Lazy<StorageConnections>(() => new StorageConnections(remote, dataDirectory));
        var areas = new List<StorageArea>();
        foreach (var name in StorageOptions.KnownAreas.Concat(configured.Keys).Concat(extra ?? []).Distinct(StringComparer.Ordinal))
        {
            var location = configured.TryGetValue(name, out var uri) && !string.IsNullOrWhiteSpace(uri)
                ? ParseLocation(name, uri)
                : new Uri(Path.GetFullPath(Path.Combine(dataDirectory, name)));
            areas.Add(location.Scheme switch
            {
                "file" => new LocalArea(name, location),
                "root" or "roots" => new XrootdArea(name, location, remote.Access.TryGetValue(name, out var access)
                    ? connections.Value.XrootdWith(XrootdAccess.Environment(name, access))
                    : connections.Value.Xrootd),
                "http" or "https" or "dav" or "davs" => new WebDavArea(name, location,
                    new WebDavClient(HttpAreaAccess.CreateClient(name, remote.Access.GetValueOrDefault(name) ?? new AreaAccessOptions(), remote)),
                    connections.Value.SpoolFolder),
                "srm" or "gsiftp" or "s3" or "s3s" or "dcap" => new GfalArea(name, location, connections.Value.SpoolFolder, TimeSpan.FromSeconds(remote.TimeoutSeconds)),
                var scheme when scheme.StartsWith("gfal+", StringComparison.Ordinal) =>
                    new GfalArea(name, location, connections.Value.SpoolFolder, TimeSpan.FromSeconds(remote.TimeoutSeconds)),
                _ => throw new ArgumentException(
                    $"Storage area '{name}': '{location.Scheme}://' is not a kind of area (file, root, https, davs, http; srm, gsiftp, s3, dcap or gfal+<scheme> through gfal2)."),
            });
        }
        return new StorageAreas(areas);
    }

    private static Uri ParseLocation(string name, string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var location))
        {
            // A plain path is a folder.
            return new Uri(Path.GetFullPath(text));
        }
        return StorageArea.WithoutCredentials(location);
    }

    /// <summary>What every remote area of a process shares: one XRootD client, one spool folder (each HTTP area has its own connections).</summary>
    private sealed class StorageConnections(RemoteStorageOptions options, string dataDirectory)
    {
        public XrootdClient Xrootd { get; } = new(TimeSpan.FromSeconds(options.TimeoutSeconds), options.ConnectTimeoutSeconds, options.RequestTimeoutSeconds);

        /// <summary>A client of its own for an area with credentials: the tools find them in their environment.</summary>
        public XrootdClient XrootdWith(IReadOnlyDictionary<string, string> credentials) =>
            new(TimeSpan.FromSeconds(options.TimeoutSeconds), options.ConnectTimeoutSeconds, options.RequestTimeoutSeconds, credentials);

        public string SpoolFolder { get; } = Path.GetFullPath(options.SpoolPath ?? Path.Combine(dataDirectory, "spool"));
    }
}
