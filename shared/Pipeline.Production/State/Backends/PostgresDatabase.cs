using System.Data;
using Npgsql;

namespace Pipeline.Production.State;

/// <summary>
/// The PostgreSQL server every PostgreSQL store shares: a pool of connections from one data source. Unlike SQLite,
/// many instances write at once, so each write is its own transaction, and a store that reads before it writes locks
/// what it read (a row <c>FOR UPDATE</c>, or an advisory lock for a set of rows). A transaction the server aborts
/// for a race (a serialization failure, a deadlock, a unique key taken meanwhile) is run again, up to a bound.
/// </summary>
public sealed class PostgresDatabase : IAsyncDisposable, IDisposable
{
    /// <summary>How many times a write the server aborted for a race is run again before the failure is the caller's.</summary>
    public const int MaxRetries = 8;

    private readonly NpgsqlDataSource _source;

    public PostgresDatabase(NpgsqlDataSource source)
    {
        _source = source;
    }

    /// <summary>The server and database, for messages: never the password.</summary>
    public string Describe()
    {
        var settings = new NpgsqlConnectionStringBuilder(_source.ConnectionString);
        return $"{settings.Host}:{settings.Port}/{settings.Database}";
    }

    /// <summary>
    /// Brings one concern's tables to the latest of its <paramref name="steps"/>: each step runs once, in order, in one
    /// transaction with its version, under an advisory lock, so that of two instances starting together one migrates
    /// and the other waits for it and finds nothing left to do.
    /// </summary>
    public void Migrate(string concern, IReadOnlyList<string> steps)
    {
        using var connection = _source.OpenConnection();
        using var transaction = connection.BeginTransaction();
        var session = new PostgresSession(connection, transaction);
        session.RunNow("SELECT pg_advisory_xact_lock(hashtext('pipeline schema'))");
        session.RunNow("CREATE TABLE IF NOT EXISTS schema_versions (concern TEXT PRIMARY KEY, version INTEGER NOT NULL)");
        var version = session.ScalarNow("SELECT version FROM schema_versions WHERE concern = @concern", ("concern", concern)) is int known ? known : 0;
        for (var step = version; step < steps.Count; step++)
        {
            session.RunNow(steps[step]);
        }
        if (steps.Count > version)
        {
            session.RunNow("""
                INSERT INTO schema_versions (concern, version) VALUES (@concern, @version)
                ON CONFLICT (concern) DO UPDATE SET version = excluded.version
                """, ("concern", concern), ("version", steps.Count));
        }
        transaction.Commit();
    }

    /// <summary>The schema version each concern's tables are at.</summary>
    public Task<IReadOnlyList<(string Concern, int Version)>> SchemaVersionsAsync(CancellationToken cancellationToken) =>
        RowsAsync("SELECT concern, version FROM schema_versions ORDER BY concern", r => (r.GetString(0), r.GetInt32(1)), cancellationToken);

    /// <summary>Reads on a pooled connection of its own, outside any transaction.</summary>
    public async Task<T> ReadAsync<T>(Func<PostgresSession, Task<T>> read, CancellationToken cancellationToken)
    {
        await using var connection = await _source.OpenConnectionAsync(cancellationToken);
        return await read(new PostgresSession(connection, null, cancellationToken));
    }

    /// <summary>The rows of one query, each made into a <typeparamref name="T"/>.</summary>
    public Task<IReadOnlyList<T>> RowsAsync<T>(string sql, Func<NpgsqlDataReader, T> row, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters) =>
        ReadAsync<IReadOnlyList<T>>(async session => await session.RowsAsync(sql, row, parameters), cancellationToken);

    /// <summary>The rows of one of the stores' named queries (see <see cref="PostgresQuery"/>).</summary>
    public Task<IReadOnlyList<T>> RowsAsync<T>(PostgresQuery query, Func<NpgsqlDataReader, T> row, CancellationToken cancellationToken) =>
        RowsAsync(query.Sql, row, cancellationToken, query.Parameters);

    /// <summary>
    /// Runs a write in a transaction of its own and returns its result once committed. A write that throws
    /// <see cref="RefusedWrite"/> is rolled back and returns the refusal's result.
    /// </summary>
    public async Task<T> WriteAsync<T>(Func<PostgresSession, Task<T>> write, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            await using var connection = await _source.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken);
            try
            {
                var result = await write(new PostgresSession(connection, transaction, cancellationToken));
                await transaction.CommitAsync(cancellationToken);
                return result;
            }
            catch (RefusedWrite refused)
            {
                await transaction.RollbackAsync(CancellationToken.None);
                return (T)refused.Result!;
            }
            catch (PostgresException race) when (IsRace(race) && attempt < MaxRetries)
            {
                await transaction.RollbackAsync(CancellationToken.None);
                // A short, growing, jittered pause, so that the writers that collided do not collide again.
                await Task.Delay(TimeSpan.FromMilliseconds(Random.Shared.Next(1, 5 << Math.Min(attempt, 6))), cancellationToken);
            }
        }
    }

    /// <summary>Answers when the server does: for the readiness check.</summary>
    public Task PingAsync(CancellationToken cancellationToken) => ReadAsync(session => session.ScalarAsync("SELECT 1"), cancellationToken);

    /// <summary>Aborted by a concurrent writer: running the transaction again sees what it committed.</summary>
    private static bool IsRace(PostgresException exception) => exception.SqlState is
        PostgresErrorCodes.SerializationFailure or PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.UniqueViolation;

    public ValueTask DisposeAsync() => _source.DisposeAsync();

    public void Dispose() => _source.Dispose();
}

/// <summary>
/// A query a store makes, with its parameters, named so that a test can ask the server how it plans it: the listings
/// must be answered from an index, without a sequential scan or a sort, however large the tables grow.
/// </summary>
public sealed record PostgresQuery(string Sql, params (string Name, object? Value)[] Parameters);

/// <summary>A connection, and inside a write its transaction: the few operations every PostgreSQL store is written in.</summary>
public readonly struct PostgresSession(NpgsqlConnection connection, NpgsqlTransaction? transaction, CancellationToken cancellationToken = default)
{
    public NpgsqlCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = new NpgsqlCommand(sql, connection, transaction);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        return command;
    }

    /// <summary>Runs a statement; returns the rows it changed.</summary>
    public async Task<int> RunAsync(string sql, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>The first column of the first row, or null when there is none (or it is NULL).</summary>
    public async Task<object?> ScalarAsync(string sql, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await command.ExecuteScalarAsync(cancellationToken) is { } value and not DBNull ? value : null;
    }

    /// <summary>
    /// The server's clock, in Unix milliseconds: what leases are judged by, so that processes on hosts whose clocks
    /// differ agree on when a lease ran out (a host whose clock runs ahead takes no live lease).
    /// </summary>
    public async Task<long> ServerMillisAsync() => (long)(await ScalarAsync($"SELECT {ServerMillis}"))!;

    /// <summary>The server's clock in Unix milliseconds, as an SQL expression (the columns of leases hold such times).</summary>
    public const string ServerMillis = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

    /// <summary>Every row of a query, each made into a <typeparamref name="T"/>: the one place rows are read.</summary>
    public async Task<List<T>> RowsAsync<T>(string sql, Func<NpgsqlDataReader, T> row, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(sql, parameters);
        return await RowsAsync(command, row, cancellationToken);
    }

    /// <summary>Every row of a prepared command (one run per value in a loop, say).</summary>
    public static async Task<List<T>> RowsAsync<T>(NpgsqlCommand command, Func<NpgsqlDataReader, T> row, CancellationToken cancellationToken)
    {
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var rows = new List<T>();
        while (await reader.ReadAsync(cancellationToken))
        {
            rows.Add(row(reader));
        }
        return rows;
    }

    /// <summary>Streams rows into a table by the COPY protocol (many rows at the cost of one round trip), inside the session's transaction.</summary>
    public async Task<ulong> ImportAsync(string copyCommand, Func<NpgsqlBinaryImporter, Task> write)
    {
        await using var importer = await connection.BeginBinaryImportAsync(copyCommand, cancellationToken);
        await write(importer);
        return await importer.CompleteAsync(cancellationToken);
    }

    /// <summary>Takes a lock on a name until the transaction ends: writers of one set of rows (a dataset's numbers, say) queue on it.</summary>
    public Task LockAsync(string name) => ScalarAsync("SELECT pg_advisory_xact_lock(hashtext(@name))", ("name", name));

    internal void RunNow(string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        command.ExecuteNonQuery();
    }

    internal object? ScalarNow(string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        return command.ExecuteScalar() is { } value and not DBNull ? value : null;
    }
}

/// <summary>How values are kept in PostgreSQL columns: times as milliseconds since the epoch, as in SQLite.</summary>
public static class PostgresValues
{
    public static long Millis(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    public static DateTimeOffset Time(this NpgsqlDataReader reader, int column) => DateTimeOffset.FromUnixTimeMilliseconds(reader.Long(column));

    public static DateTimeOffset? TimeOrNull(this NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.Time(column);

    public static string? StringOrNull(this NpgsqlDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetString(column);

    /// <summary>Any integer column (or a count, or a sum) as a long.</summary>
    public static long Long(this NpgsqlDataReader reader, int column) => Convert.ToInt64(reader.GetValue(column), System.Globalization.CultureInfo.InvariantCulture);

    public static int Int(this NpgsqlDataReader reader, int column) => Convert.ToInt32(reader.GetValue(column), System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>Opens the configured PostgreSQL server: the password from a file, never from the connection string.</summary>
public static class PostgresConnection
{
    public static PostgresDatabase Open(Pipeline.Infrastructure.Hosting.PostgresOptions options)
    {
        NpgsqlConnectionStringBuilder settings;
        try
        {
            settings = new NpgsqlConnectionStringBuilder(options.ConnectionString);
        }
        catch (ArgumentException ex)
        {
            // The message of a malformed string can quote it: only the reason is given.
            throw new InvalidOperationException($"Pipeline:Postgres:ConnectionString is not a valid connection string: {ex.GetType().Name}.");
        }
        if (!string.IsNullOrEmpty(settings.Password))
        {
            throw new InvalidOperationException(
                $"Pipeline:Postgres:ConnectionString for host {settings.Host} carries a password: put it in the file named by Pipeline:Postgres:PasswordFile (or PGPASSWORD) instead.");
        }
        if (options.PasswordFile is { } file)
        {
            if (!File.Exists(file))
            {
                throw new InvalidOperationException($"Pipeline:Postgres:PasswordFile {file} does not exist.");
            }
            settings.Password = File.ReadLines(file).FirstOrDefault()?.Trim() ?? "";
        }
        settings.MaxPoolSize = options.MaxConnections;
        settings.ApplicationName ??= "pipeline";
        var builder = new NpgsqlDataSourceBuilder(settings.ConnectionString);
        return new PostgresDatabase(builder.Build());
    }
}
