using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Processes;
using Pipeline.Production.State;

namespace Pipeline.Faults;

/// <summary>
/// The run's state store on a PostgreSQL server of its own (tests/postgres/local-server.sh), listening where the services
/// reach it: loopback, the bridge address of the tests' network, or a host of that network of its own. Stopped and
/// started again as a fault: open transactions are rolled back, connections dropped, and every commit it acknowledged kept.
/// </summary>
public sealed class StateServer : IAsyncDisposable
{
    private readonly string _folder;
    private readonly string _address;
    private readonly NetworkHost? _host;

    private StateServer(string folder, string address, NetworkHost? host, PostgresOptions options)
    {
        _folder = folder;
        _address = address;
        _host = host;
        Options = options;
    }

    public PostgresOptions Options { get; }

    /// <summary>The services' settings for this store.</summary>
    public IReadOnlyDictionary<string, string> Settings => new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["Pipeline__Store"] = "Postgres",
        ["Pipeline__Postgres__ConnectionString"] = Options.ConnectionString,
        ["Pipeline__Postgres__PasswordFile"] = Options.PasswordFile!,
    };

    /// <param name="host">A host of the tests' network to run on (the server then listens on its address), or null for this machine.</param>
    public static async Task<StateServer> StartAsync(string folder, string address, CancellationToken cancellationToken, NetworkHost? host = null)
    {
        address = host?.Address ?? address;
        await RunAsync("start", folder, address, host, cancellationToken);
        var settings = (await File.ReadAllLinesAsync(Path.Combine(folder, "server.env"), cancellationToken))
            .Select(line => line.Split('=', 2)).ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        return new StateServer(folder, address, host, new PostgresOptions { ConnectionString = settings["CONNECTION"], PasswordFile = settings["PASSWORD_FILE"] });
    }

    /// <summary>The store as the checker reads it (from this machine: the server listens on an address it reaches).</summary>
    public StoreBackend Open() => StoreBackend.Postgres(PostgresConnection.Open(Options));

    /// <summary>Where the server runs: a host of the tests' network, or this machine.</summary>
    public string Where => _host?.Name ?? "this machine";

    public Task StopAsync(CancellationToken cancellationToken) => RunAsync("stop", _folder, _address, _host, cancellationToken);

    public Task StartAgainAsync(CancellationToken cancellationToken) => RunAsync("start", _folder, _address, _host, cancellationToken);

    public async ValueTask DisposeAsync() => await RunAsync("stop", _folder, _address, _host, CancellationToken.None);

    private static async Task RunAsync(string command, string folder, string address, NetworkHost? host, CancellationToken cancellationToken)
    {
        var script = Path.Combine(ProcessPipeline.RepositoryRoot, "tests", "postgres", "local-server.sh");
        string[] onHost = host is null ? [] : ["ip", "netns", "exec", host.Namespace];
        var outcome = await ExternalCommand.RunAsync([.. onHost, "bash", script, command, folder, address], null, TimeSpan.FromMinutes(3), cancellationToken);
        if (!outcome.Succeeded)
        {
            throw new InvalidOperationException($"postgres local-server.sh {command}: {outcome.Describe()}");
        }
    }
}
