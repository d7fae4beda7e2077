using Microsoft.Data.Sqlite;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.State;

/// <summary>Singleton leases in SQLite: one row per singleton, taken or renewed by one conditional upsert.</summary>
public sealed class SqliteSingletonLeaseStore : ISingletonLeaseStore, ISqliteStore
{
    private const string Columns = "name, holder, token, expires_at";
    private readonly SqliteDatabase _database;

    public SqliteSingletonLeaseStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run(
            "CREATE TABLE IF NOT EXISTS singleton_leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, token INTEGER NOT NULL, expires_at INTEGER NOT NULL);"));
    }

    public Task<SingletonLease> AcquireAsync(string name, string holder, TimeSpan duration, DateTimeOffset now, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            // Taken when free or expired, renewed when its own; the token moves on unless the holder kept it without a gap.
            session.Run(
                """
                INSERT INTO singleton_leases (name, holder, token, expires_at) VALUES ($name, $holder, 1, $expires)
                ON CONFLICT(name) DO UPDATE SET
                  token = CASE WHEN holder = excluded.holder AND expires_at > $now THEN token ELSE token + 1 END,
                  holder = excluded.holder,
                  expires_at = excluded.expires_at
                WHERE holder = excluded.holder OR expires_at <= $now
                """,
                ("$name", name), ("$holder", holder), ("$expires", (now + duration).ToUnixTimeMilliseconds()), ("$now", now.ToUnixTimeMilliseconds()));
            return session.Rows($"SELECT {Columns} FROM singleton_leases WHERE name = $name", Read, ("$name", name)).Single();
        }, cancellationToken);

    public Task ReleaseAsync(string name, string holder, long token, DateTimeOffset now, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run(
            "UPDATE singleton_leases SET expires_at = $now WHERE name = $name AND holder = $holder AND token = $token AND expires_at > $now",
            ("$name", name), ("$holder", holder), ("$token", token), ("$now", now.ToUnixTimeMilliseconds())), cancellationToken);

    public async Task<SingletonLease?> GetAsync(string name, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {Columns} FROM singleton_leases WHERE name = $name", Read, ("$name", name))).SingleOrDefault();

    public Task<IReadOnlyList<SingletonLease>> ListAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {Columns} FROM singleton_leases ORDER BY name", Read);

    /// <summary>
    /// Refuses the write it runs in (<see cref="StaleFenceException"/>, its changes undone) unless the fence's holder still
    /// holds the lease under the fence's token: a holder deposed since, or paused past its lease, writes nothing.
    /// </summary>
    public static void Require(SqliteSession session, SingletonFence? fence)
    {
        if (fence is not null && session.Scalar("SELECT 1 FROM singleton_leases WHERE name = $name AND holder = $holder AND token = $token",
                ("$name", fence.Name), ("$holder", fence.Holder), ("$token", fence.Token)) is null)
        {
            throw new StaleFenceException(fence);
        }
    }

    private static SingletonLease Read(SqliteDataReader row) =>
        new(row.GetString(0), row.GetString(1), row.GetInt64(2), DateTimeOffset.FromUnixTimeMilliseconds(row.GetInt64(3)));
}
