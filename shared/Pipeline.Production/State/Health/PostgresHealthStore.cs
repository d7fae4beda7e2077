using System.Text.Json;
using Npgsql;
using Pipeline.Contracts;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>The health watcher's record in PostgreSQL: the last heartbeat of every instance, and alerts raised and resolved.</summary>
public sealed class PostgresHealthStore : IHealthStore, IPostgresStore
{
    private const string AlertColumns = "key, kind, severity, message, raised_at, last_seen_at, resolved_at";

    private readonly PostgresDatabase _database;

    public PostgresHealthStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("health",
        [
            """
            CREATE TABLE instances (
                instance TEXT PRIMARY KEY,
                services TEXT NOT NULL,
                host TEXT NOT NULL,
                started_at BIGINT NOT NULL,
                last_seen_at BIGINT NOT NULL,
                load JSONB NOT NULL);
            CREATE TABLE alerts (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                key TEXT NOT NULL,
                kind TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                raised_at BIGINT NOT NULL,
                last_seen_at BIGINT NOT NULL,
                resolved_at BIGINT NULL);
            -- At most one active alert per key.
            CREATE UNIQUE INDEX ix_alerts_active ON alerts(key) WHERE resolved_at IS NULL;
            CREATE INDEX ix_alerts_raised ON alerts(raised_at, id);
            CREATE INDEX ix_alerts_active_raised ON alerts(raised_at, id) WHERE resolved_at IS NULL;
            """,
        ]);
    }

    public Task RecordHeartbeatAsync(InstanceRecord heartbeat, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync("""
                INSERT INTO instances (instance, services, host, started_at, last_seen_at, load) VALUES (@instance, @services, @host, @started, @seen, @load::jsonb)
                ON CONFLICT (instance) DO UPDATE SET services = excluded.services, host = excluded.host, started_at = excluded.started_at,
                    last_seen_at = excluded.last_seen_at, load = excluded.load WHERE excluded.last_seen_at > instances.last_seen_at
                """, ("load", JsonSerializer.Serialize(heartbeat.Load, SqliteDatabase.Json)),
                ("instance", heartbeat.Instance), ("services", heartbeat.Services), ("host", heartbeat.Host),
                ("started", Millis(heartbeat.StartedAt)), ("seen", Millis(heartbeat.LastSeenAt))),
            cancellationToken);

    public Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT instance, services, host, started_at, last_seen_at, load::text FROM instances ORDER BY instance",
            r => new InstanceRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3), r.Time(4),
                JsonSerializer.Deserialize<List<StageLoad>>(r.GetString(5), SqliteDatabase.Json) ?? []),
            cancellationToken);

    public Task<bool> RaiseAlertAsync(string key, string kind, string severity, string message, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            if (await session.RunAsync("UPDATE alerts SET last_seen_at = @at, message = @message, severity = @severity WHERE key = @key AND resolved_at IS NULL",
                    ("at", Millis(at)), ("message", message), ("severity", severity), ("key", key)) > 0)
            {
                return false;
            }
            // Two raising one key at once: the second's insert breaks the unique index, and its write runs again as an update.
            await session.RunAsync("INSERT INTO alerts (key, kind, severity, message, raised_at, last_seen_at) VALUES (@key, @kind, @severity, @message, @at, @at)",
                ("key", key), ("kind", kind), ("severity", severity), ("message", message), ("at", Millis(at)));
            return true;
        }, cancellationToken);

    public Task<AlertRecord?> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session => (await session.RowsAsync($"""
            UPDATE alerts SET resolved_at = @at WHERE key = @key AND resolved_at IS NULL
            RETURNING {AlertColumns}
            """, Alert, ("at", Millis(at)), ("key", key))).SingleOrDefault(), cancellationToken);

    private static AlertRecord Alert(NpgsqlDataReader r) => new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.Time(4), r.Time(5), r.TimeOrNull(6));

    public Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync(Alerts(activeOnly, limit), Alert, cancellationToken);

    /// <summary>The latest alerts first (the active ones only, or all).</summary>
    public static PostgresQuery Alerts(bool activeOnly, int limit) => new($"""
        SELECT {AlertColumns} FROM alerts
        {(activeOnly ? "WHERE resolved_at IS NULL" : "")} ORDER BY raised_at DESC, id DESC LIMIT @limit
        """, ("limit", limit));
}
