using Npgsql;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.State;

/// <summary>Singleton leases in PostgreSQL: one row per singleton, taken or renewed by one conditional upsert.</summary>
public sealed class PostgresSingletonLeaseStore : ISingletonLeaseStore, IPostgresStore
{
    private const string Columns = "name, holder, token, expires_at";
    private readonly PostgresDatabase _database;

    public PostgresSingletonLeaseStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("singleton_leases",
            ["CREATE TABLE singleton_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token BIGINT NOT NULL, expires_at BIGINT NOT NULL);"]);
    }

    /// <summary>Measured on the server's clock, not <paramref name="callerNow"/>: the instances of a singleton run on several hosts.</summary>
    public Task<SingletonLease> AcquireAsync(string name, string holder, TimeSpan duration, DateTimeOffset callerNow, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            var now = await session.ServerMillisAsync();
            // Taken when free or expired, renewed when its own; the token moves on unless the holder kept it without a gap.
            await session.RunAsync("""
                INSERT INTO singleton_leases AS lease (name, holder, token, expires_at) VALUES (@name, @holder, 1, @expires)
                ON CONFLICT (name) DO UPDATE SET
                  token = CASE WHEN lease.holder = excluded.holder AND lease.expires_at > @now THEN lease.token ELSE lease.token + 1 END,
                  holder = excluded.holder,
                  expires_at = excluded.expires_at
                WHERE lease.holder = excluded.holder OR lease.expires_at <= @now
                """,
                ("name", name), ("holder", holder), ("expires", now + (long)duration.TotalMilliseconds), ("now", now));
            return (await session.RowsAsync($"SELECT {Columns} FROM singleton_leases WHERE name = @name", Read, ("name", name))).Single();
        }, cancellationToken);

    public Task ReleaseAsync(string name, string holder, long token, DateTimeOffset callerNow, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync($"""
                UPDATE singleton_leases SET expires_at = {PostgresSession.ServerMillis}
                WHERE name = @name AND holder = @holder AND token = @token AND expires_at > {PostgresSession.ServerMillis}
                """, ("name", name), ("holder", holder), ("token", token)), cancellationToken);

    public async Task<SingletonLease?> GetAsync(string name, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {Columns} FROM singleton_leases WHERE name = @name", Read, cancellationToken, ("name", name))).SingleOrDefault();

    public Task<IReadOnlyList<SingletonLease>> ListAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {Columns} FROM singleton_leases ORDER BY name", Read, cancellationToken);

    /// <summary>
    /// Refuses the write it runs in (<see cref="StaleFenceException"/>, its changes undone) unless the fence's holder still
    /// holds the lease under the fence's token. The lease's row stays locked (shared) until the write commits: a new
    /// holder cannot take it in between.
    /// </summary>
    public static async Task RequireAsync(PostgresSession session, SingletonFence? fence)
    {
        if (fence is not null && await session.ScalarAsync("SELECT 1 FROM singleton_leases WHERE name = @name AND holder = @holder AND token = @token FOR SHARE",
                ("name", fence.Name), ("holder", fence.Holder), ("token", fence.Token)) is null)
        {
            throw new StaleFenceException(fence);
        }
    }

    private static SingletonLease Read(NpgsqlDataReader row) =>
        new(row.GetString(0), row.GetString(1), row.GetInt64(2), DateTimeOffset.FromUnixTimeMilliseconds(row.GetInt64(3)));
}
