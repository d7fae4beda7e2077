using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.State;

/// <summary>
/// The embedded database every SQLite store shares: one file in WAL mode, read on pooled connections, written by
/// one writer. SQLite admits one writer at a time, so writes queue here and the writer applies whatever has queued
/// up in one transaction (group commit): one disk flush serves many writes, each still all-or-nothing.
/// </summary>
public sealed class SqliteDatabase : IDisposable
{
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private const int MaxWritesPerCommit = 256;
    private readonly Channel<WriteRequest> _writes = Channel.CreateUnbounded<WriteRequest>(new UnboundedChannelOptions { SingleReader = true });
    private readonly string _connectionString;
    private readonly string _pragmas;

    /// <param name="databasePath">The database file; created if missing (each store creates its own tables).</param>
    /// <param name="durability">
    /// Full: every commit reaches the disk before it returns (survives a power cut).
    /// Normal: commits reach the operating system; a process crash loses nothing, a power cut may lose the last ones.
    /// </param>
    public SqliteDatabase(string databasePath, SqliteDurability durability = SqliteDurability.Full)
    {
        _pragmas = $"PRAGMA synchronous={(durability == SqliteDurability.Full ? "FULL" : "NORMAL")}; PRAGMA foreign_keys=ON;";
        var directory = Path.GetDirectoryName(Path.GetFullPath(databasePath));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            DefaultTimeout = 30,
            Pooling = true,
        }.ToString();
        using (var connection = Open())
        {
            new SqliteSession(connection, null).Run("PRAGMA journal_mode=WAL;");
        }
        _ = Task.Run(ApplyWritesAsync);
    }

    /// <summary>Creates what a store needs (statements that are no-ops when it exists), before the store is used.</summary>
    public void Migrate(Action<SqliteSession> migration)
    {
        using var connection = Open();
        migration(new SqliteSession(connection, null));
    }

    /// <summary>Reads on a connection of its own, concurrently with other reads and with the writer.</summary>
    public Task<T> ReadAsync<T>(Func<SqliteSession, T> read)
    {
        using var connection = Open();
        return Task.FromResult(read(new SqliteSession(connection, null)));
    }

    /// <summary>The rows of one query, each made into a <typeparamref name="T"/>.</summary>
    public Task<IReadOnlyList<T>> RowsAsync<T>(string sql, Func<SqliteDataReader, T> row, params (string Name, object? Value)[] parameters) =>
        ReadAsync<IReadOnlyList<T>>(session => session.Rows(sql, row, parameters));

    /// <summary>
    /// Queues a write for the writer's next transaction and returns its result once committed. A write that throws
    /// <see cref="RefusedWrite"/> is undone (only its own changes) and returns the refusal's result.
    /// </summary>
    public async Task<T> WriteAsync<T>(Func<SqliteSession, T> write, CancellationToken cancellationToken)
    {
        var request = new WriteRequest(session => write(session));
        await _writes.Writer.WriteAsync(request, cancellationToken);
        return (T)(await request.Done.Task)!;
    }

    public void Dispose() => _writes.Writer.TryComplete();

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        new SqliteSession(connection, null).Run(_pragmas);
        return connection;
    }

    private async Task ApplyWritesAsync()
    {
        using var connection = Open();
        var batch = new List<WriteRequest>(MaxWritesPerCommit);
        while (await _writes.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxWritesPerCommit && _writes.Reader.TryRead(out var request))
            {
                batch.Add(request);
            }
            var outcomes = new (object? Result, Exception? Error)[batch.Count];
            try
            {
                using var transaction = connection.BeginTransaction(deferred: false);
                var session = new SqliteSession(connection, transaction);
                for (var i = 0; i < batch.Count; i++)
                {
                    // Each write is all-or-nothing on its own: a refused or failed one is undone to its savepoint.
                    transaction.Save("write");
                    try
                    {
                        outcomes[i] = (batch[i].Work(session), null);
                        transaction.Release("write");
                    }
                    catch (Exception ex)
                    {
                        transaction.Rollback("write");
                        transaction.Release("write");
                        outcomes[i] = ex is RefusedWrite refused ? (refused.Result, null) : (null, ex);
                    }
                }
                transaction.Commit();
            }
            catch (Exception ex)
            {
                // Nothing of this batch was committed.
                foreach (var request in batch)
                {
                    request.Done.TrySetException(ex);
                }
                continue;
            }
            for (var i = 0; i < batch.Count; i++)
            {
                if (outcomes[i].Error is { } error)
                {
                    batch[i].Done.TrySetException(error);
                }
                else
                {
                    batch[i].Done.TrySetResult(outcomes[i].Result);
                }
            }
        }
    }

    private sealed class WriteRequest(Func<SqliteSession, object?> work)
    {
        public Func<SqliteSession, object?> Work { get; } = work;

        public TaskCompletionSource<object?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>Thrown by a write that decides to change nothing; its own changes are undone and <see cref="Result"/> returned.</summary>
public sealed class RefusedWrite(object? result) : Exception("write refused")
{
    public object? Result { get; } = result;
}

/// <summary>A connection, and inside a write its transaction: the few operations every SQLite store is written in.</summary>
public readonly struct SqliteSession(SqliteConnection connection, SqliteTransaction? transaction)
{
    public SqliteCommand Command(string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        return command;
    }

    /// <summary>Runs a statement; returns the rows it changed.</summary>
    public int Run(string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        return command.ExecuteNonQuery();
    }

    /// <summary>The first column of the first row, or null when there is none (or it is NULL).</summary>
    public object? Scalar(string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        return command.ExecuteScalar() is { } value and not DBNull ? value : null;
    }

    /// <summary>Every row of a query, each made into a <typeparamref name="T"/>: the one place rows are read.</summary>
    public List<T> Rows<T>(string sql, Func<SqliteDataReader, T> row, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(sql, parameters);
        return Rows(command, row);
    }

    /// <summary>Every row of a prepared command (one run per value in a loop, say).</summary>
    public static List<T> Rows<T>(SqliteCommand command, Func<SqliteDataReader, T> row)
    {
        using var reader = command.ExecuteReader();
        var rows = new List<T>();
        while (reader.Read())
        {
            rows.Add(row(reader));
        }
        return rows;
    }

    /// <summary>Adds a column to a table made before the column existed; its older rows get NULL.</summary>
    public void AddColumnIfMissing(string table, string column, string definition)
    {
        if (Convert.ToInt64(Scalar($"SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = $column", ("$column", column)), CultureInfo.InvariantCulture) == 0)
        {
            Run($"ALTER TABLE {table} ADD COLUMN {column} {definition}");
        }
    }
}

/// <summary>How values are kept in SQLite columns.</summary>
public static class SqliteValues
{
    public static string Key(Guid id) => id.ToString("D");

    public static long Millis(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    public static DateTimeOffset Time(this SqliteDataReader reader, int column) => DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(column));

    public static DateTimeOffset? TimeOrNull(this SqliteDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.Time(column);

    public static string? StringOrNull(this SqliteDataReader reader, int column) => reader.IsDBNull(column) ? null : reader.GetString(column);
}
