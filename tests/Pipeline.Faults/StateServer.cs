using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Processes;
using Pipeline.Production.State;

namespace Pipeline.Faults;

/// <summary>
/// The run's state store on a PostgreSQL server of its own (tests/postgres/local-server.sh), listening where the services
/// reach it: loopback, or the bridge address of the tests' network. Stopped and started again as a fault: open
/// transactions are rolled back, connections dropped, and every commit it acknowledged kept.
/// </summary>
public sealed class StateServer : IAsyncDisposable
{
    private readonly string _folder;
    private readonly string _address;

    private StateServer(string folder, string address, PostgresOptions options)
    {
        _folder = folder;
        _address = address;
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

    public static async Task<StateServer> StartAsync(string folder, string address, CancellationToken cancellationToken)
    {
        await RunAsync("start", folder, address, cancellationToken);
        var settings = (await File.ReadAllLinesAsync(Path.Combine(folder, "server.env"), cancellationToken))
            .Select(line => line.Split('=', 2)).ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        return new StateServer(folder, address, new PostgresOptions { ConnectionString = settings["CONNECTION"], PasswordFile = settings["PASSWORD_FILE"] });
    }

    /// <summary>The store as the checker reads it (from this machine: the server listens on an address it reaches).</summary>
    public StoreBackend Open() => StoreBackend.Postgres(PostgresConnection.Open(Options));

    public Task StopAsync(CancellationToken cancellationToken) => RunAsync("stop", _folder, _address, cancellationToken);

    public Task StartAgainAsync(CancellationToken cancellationToken) => RunAsync("start", _folder, _address, cancellationToken);

    public async ValueTask DisposeAsync() => await RunAsync("stop", _folder, _address, CancellationToken.None);

    private static async Task RunAsync(string command, string folder, string address, CancellationToken cancellationToken)
    {
        var script = Path.Combine(ProcessPipeline.RepositoryRoot, "tests", "postgres", "local-server.sh");
        var outcome = await ExternalCommand.RunAsync(["bash", script, command, folder, address], null, TimeSpan.FromMinutes(3), cancellationToken);
        if (!outcome.Succeeded)
        {
            throw new InvalidOperationException($"postgres local-server.sh {command}: {outcome.Describe()}");
        }
    }
}
