using Npgsql;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Tests.Support;

/// <summary>
/// A real PostgreSQL 15 server for the store tests, on a free loopback port with a password in a file: started and
/// stopped by tests/postgres/local-server.sh (which installs postgresql-15 from Debian when missing). Where it cannot
/// start, the tests that need it are skipped with the reason.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private TempDirectory? _folder;

    public string? Unavailable { get; private set; }

    /// <summary>Host, port, database and user: no password.</summary>
    public string ConnectionString { get; private set; } = "";

    public string PasswordFile { get; private set; } = "";

    private static string Script => Path.Combine(Platform.RepositoryRoot, "tests", "postgres", "local-server.sh");

    public async Task InitializeAsync()
    {
        _folder = new TempDirectory();
        var started = await RunScriptAsync("start");
        if (started is not null)
        {
            Unavailable = $"The PostgreSQL server did not start: {started}";
            return;
        }
        var settings = (await File.ReadAllLinesAsync(Path.Combine(_folder.Path, "server.env")))
            .Select(line => line.Split('=', 2)).ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        ConnectionString = settings["CONNECTION"];
        PasswordFile = settings["PASSWORD_FILE"];
    }

    /// <summary>The options a pipeline process is given for this server, its tables in <paramref name="schema"/> if named.</summary>
    public PostgresOptions Options(string? schema = null) => new()
    {
        ConnectionString = schema is null ? ConnectionString : $"{ConnectionString};Search Path={schema}",
        PasswordFile = PasswordFile,
    };

    /// <summary>A schema of its own for one test: its tables never meet another test's.</summary>
    public async Task<string> CreateSchemaAsync()
    {
        var schema = "test_" + Guid.NewGuid().ToString("N")[..12];
        await RunAsync($"CREATE SCHEMA {schema}");
        return schema;
    }

    public Task DropSchemaAsync(string schema) => RunAsync($"DROP SCHEMA IF EXISTS {schema} CASCADE");

    /// <summary>Runs a statement as the pipeline's user, in the schema if one is named.</summary>
    public async Task RunAsync(string sql, string? schema = null)
    {
        await using var database = PostgresConnection.Open(Options(schema));
        await database.WriteAsync(session => session.RunAsync(sql), CancellationToken.None);
    }

    /// <summary>Stops the server (fast: open transactions roll back); its files stay.</summary>
    public async Task StopAsync() => Assert.Null(await RunScriptAsync("stop"));

    /// <summary>Starts a stopped server again, on the same port and with the same files.</summary>
    public async Task StartAgainAsync()
    {
        Assert.Null(await RunScriptAsync("start"));
        NpgsqlConnection.ClearAllPools();
    }

    /// <summary>Skips the calling test, with the reason, when the server could not start.</summary>
    public void Require() => Skip.If(Unavailable is not null, Unavailable);

    private async Task<string?> RunScriptAsync(string command)
    {
        var run = await Tool.RunAsync("bash", [Script, command, _folder!.Path]);
        return run.ExitCode == 0 ? null : run.Printed.Trim();
    }

    public async Task DisposeAsync()
    {
        if (_folder is not null)
        {
            await RunScriptAsync("stop");
            _folder.Dispose();
        }
    }
}
