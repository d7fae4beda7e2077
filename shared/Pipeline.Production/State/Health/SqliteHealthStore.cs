using System.Text.Json;
using Microsoft.Data.Sqlite;
using Pipeline.Contracts;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>The health watcher's record in SQLite: the last heartbeat of every instance, and alerts raised and resolved.</summary>
public sealed class SqliteHealthStore : IHealthStore, ISqliteStore
{
    private readonly SqliteDatabase _database;

    public SqliteHealthStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
            CREATE TABLE IF NOT EXISTS instances (
                instance TEXT PRIMARY KEY,
                services TEXT NOT NULL,
                host TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL,
                load TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS alerts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL,
                kind TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                raised_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL,
                resolved_at INTEGER NULL);
            -- At most one active alert per key.
            CREATE UNIQUE INDEX IF NOT EXISTS ix_alerts_active ON alerts(key) WHERE resolved_at IS NULL;
            CREATE INDEX IF NOT EXISTS ix_alerts_raised ON alerts(raised_at);
            """));
    }

    public Task RecordHeartbeatAsync(InstanceRecord heartbeat, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("""
                INSERT INTO instances (instance, services, host, started_at, last_seen_at, load) VALUES ($instance, $services, $host, $started, $seen, $load)
                ON CONFLICT(instance) DO UPDATE SET services = excluded.services, host = excluded.host, started_at = excluded.started_at,
                    last_seen_at = excluded.last_seen_at, load = excluded.load WHERE excluded.last_seen_at > instances.last_seen_at
                """, ("$load", JsonSerializer.Serialize(heartbeat.Load, SqliteDatabase.Json)),
                ("$instance", heartbeat.Instance), ("$services", heartbeat.Services), ("$host", heartbeat.Host),
                ("$started", Millis(heartbeat.StartedAt)), ("$seen", Millis(heartbeat.LastSeenAt))),
            cancellationToken);

    public Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT instance, services, host, started_at, last_seen_at, load FROM instances ORDER BY instance",
            r => new InstanceRecord(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3), r.Time(4),
                JsonSerializer.Deserialize<List<StageLoad>>(r.GetString(5), SqliteDatabase.Json) ?? []));

    public Task<bool> RaiseAlertAsync(string key, string kind, string severity, string message, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            if (session.Run("UPDATE alerts SET last_seen_at = $at, message = $message, severity = $severity WHERE key = $key AND resolved_at IS NULL",
                    ("$at", Millis(at)), ("$message", message), ("$severity", severity), ("$key", key)) > 0)
            {
                return false;
            }
            session.Run("INSERT INTO alerts (key, kind, severity, message, raised_at, last_seen_at) VALUES ($key, $kind, $severity, $message, $at, $at)",
                ("$key", key), ("$kind", kind), ("$severity", severity), ("$message", message), ("$at", Millis(at)));
            return true;
        }, cancellationToken);

    public Task<AlertRecord?> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Rows("""
            UPDATE alerts SET resolved_at = $at WHERE key = $key AND resolved_at IS NULL
            RETURNING key, kind, severity, message, raised_at, last_seen_at, resolved_at
            """, Alert, ("$at", Millis(at)), ("$key", key)).SingleOrDefault(), cancellationToken);

    private static AlertRecord Alert(SqliteDataReader r) => new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetString(3), r.Time(4), r.Time(5), r.TimeOrNull(6));

    public Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync($"""
            SELECT key, kind, severity, message, raised_at, last_seen_at, resolved_at FROM alerts
            {(activeOnly ? "WHERE resolved_at IS NULL" : "")} ORDER BY raised_at DESC, id DESC LIMIT $limit
            """,
            Alert, ("$limit", limit));
}
