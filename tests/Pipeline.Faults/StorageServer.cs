using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Faults;

/// <summary>
/// A real XRootD server on a host of the tests' network, serving a run's areas over root:// (the archive, and the
/// second copy's disk) and HTTP/WebDAV (cache, output, logs) from the run's data folder: the services
/// reach them only over the network, while the checker reads the server's disk. Started, killed and started again by
/// tests/xrootd/local-server.sh, on the same ports and files. Needs Debian's xrootd-server (the script installs it).
/// </summary>
public sealed class StorageServer : IAsyncDisposable
{
    private readonly string _folder;
    private readonly NetworkHost _host;

    public Uri RootUri { get; }

    public Uri HttpUri { get; }

    private StorageServer(string folder, NetworkHost host, Uri rootUri, Uri httpUri)
    {
        _folder = folder;
        _host = host;
        RootUri = rootUri;
        HttpUri = httpUri;
    }

    /// <summary>Starts the server in <paramref name="folder"/>, serving <paramref name="folder"/>/data.</summary>
    public static async Task<StorageServer> StartAsync(string folder, NetworkHost host, CancellationToken cancellationToken)
    {
        await RunAsync("start", folder, host, cancellationToken);
        var settings = (await File.ReadAllLinesAsync(Path.Combine(folder, "server.env"), cancellationToken))
            .Select(line => line.Split('=', 2)).ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        return new StorageServer(folder, host, new Uri(settings["ROOT_URL"]), new Uri(settings["HTTP_URL"]));
    }

    /// <summary>Every area but scratch (which a worker keeps on its own disk) on this server, as the services' settings.</summary>
    public IReadOnlyDictionary<string, string> AreaSettings(IEnumerable<string> rootAreas)
    {
        var settings = new Dictionary<string, string>(StringComparer.Ordinal);
        // The reconstruction outputs go over root://, as the archive does; the other areas over HTTP.
        foreach (var area in rootAreas.Append(StorageOptions.Unmerged).Distinct(StringComparer.Ordinal))
        {
            settings[$"Pipeline__Areas__{area}"] = $"{RootUri.GetLeftPart(UriPartial.Authority)}//{area}";
        }
        foreach (var area in new[] { StorageOptions.Cache, StorageOptions.Output, StorageOptions.Logs })
        {
            settings[$"Pipeline__Areas__{area}"] = new Uri(HttpUri, area).AbsoluteUri;
        }
        return settings;
    }

    /// <summary>kill -9 of the server, as a crash of its host would; its files stay.</summary>
    public Task KillAsync(CancellationToken cancellationToken) => RunAsync("kill", _folder, _host, cancellationToken);

    /// <summary>Starts a killed server again on the same ports and files.</summary>
    public Task StartAgainAsync(CancellationToken cancellationToken) => RunAsync("start", _folder, _host, cancellationToken);

    public async ValueTask DisposeAsync() => await RunAsync("stop", _folder, _host, CancellationToken.None);

    private static async Task RunAsync(string command, string folder, NetworkHost host, CancellationToken cancellationToken)
    {
        var script = Path.Combine(ProcessPipeline.RepositoryRoot, "tests", "xrootd", "local-server.sh");
        IReadOnlyList<string> arguments = command == "start" ? ["bash", script, command, folder, "--netns", host.Namespace, host.Address] : ["bash", script, command, folder];
        var outcome = await ExternalCommand.RunAsync(arguments, null, TimeSpan.FromMinutes(3), cancellationToken);
        if (!outcome.Succeeded)
        {
            throw new InvalidOperationException($"local-server.sh {command}: {outcome.Describe()}");
        }
    }
}
