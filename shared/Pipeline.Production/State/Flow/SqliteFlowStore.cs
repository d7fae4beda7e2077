using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>Flow control in SQLite: the areas' ledgers (file by file and the area's totals), the movers and the operators' settings.</summary>
public sealed class SqliteFlowStore : IFlowStore, ISqliteStore
{
    private readonly SqliteDatabase _database;

    public SqliteFlowStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
            CREATE TABLE IF NOT EXISTS area_files (
                area TEXT NOT NULL,
                name TEXT NOT NULL,
                bytes INTEGER NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (area, name));
            CREATE INDEX IF NOT EXISTS ix_area_files_at ON area_files(area, at);
            CREATE TABLE IF NOT EXISTS areas (
                area TEXT PRIMARY KEY,
                bytes INTEGER NOT NULL,
                files INTEGER NOT NULL,
                blocked INTEGER NOT NULL,
                peak_bytes INTEGER NOT NULL,
                largest_file_bytes INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS movers (
                dataset TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                since INTEGER NOT NULL,
                expires INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                by TEXT NOT NULL,
                at INTEGER NOT NULL);
            """));
    }

    public Task<bool> TryReserveAsync(string area, string name, long bytes, AreaLimits limits, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            var usage = ReadArea(session, area);
            var held = HeldBytes(session, area, name);
            if (held is null)
            {
                if (AreaLedger.Blocked(usage.Blocked, usage.Bytes, limits))
                {
                    // A refusal writes only when it blocks the area: waiting stages ask again and again.
                    if (!usage.Blocked)
                    {
                        WriteArea(session, usage with { Blocked = true });
                    }
                    return false;
                }
                usage = usage with { Files = usage.Files + 1, Blocked = false };
            }
            PutFile(session, area, new AreaFile(name, bytes), at);
            var total = usage.Bytes - (held ?? 0) + bytes;
            WriteArea(session, usage with
            {
                Bytes = total,
                PeakBytes = Math.Max(usage.PeakBytes, total),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, bytes),
            });
            return true;
        }, cancellationToken);

    public Task ReplaceReservationAsync(string area, string name, IReadOnlyList<AreaFile> files, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            var usage = ReadArea(session, area);
            var removed = HeldBytes(session, area, name);
            var bytes = usage.Bytes - (removed ?? 0);
            var count = usage.Files - (removed is null ? 0 : 1);
            session.Run("DELETE FROM area_files WHERE area = $area AND name = $name", ("$area", area), ("$name", name));
            foreach (var file in files)
            {
                var held = HeldBytes(session, area, file.Name);
                bytes += file.Bytes - (held ?? 0);
                count += held is null ? 1 : 0;
                PutFile(session, area, file, at);
            }
            WriteArea(session, usage with
            {
                Bytes = bytes,
                Files = count,
                PeakBytes = Math.Max(usage.PeakBytes, bytes),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, files.Count == 0 ? 0 : files.Max(f => f.Bytes)),
            });
            return true;
        }, cancellationToken);

    public Task ReleaseAsync(string area, string name, SingletonFence? fence, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            SqliteSingletonLeaseStore.Require(session, fence);
            var held = HeldBytes(session, area, name);
            if (held is null)
            {
                return false;
            }
            session.Run("DELETE FROM area_files WHERE area = $area AND name = $name", ("$area", area), ("$name", name));
            var usage = ReadArea(session, area);
            WriteArea(session, usage with { Bytes = usage.Bytes - held.Value, Files = usage.Files - 1 });
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<AreaUsage>> ListAreaUsageAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT area, bytes, files, blocked, peak_bytes, largest_file_bytes FROM areas ORDER BY area",
            r => new AreaUsage(r.GetString(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3) != 0, r.GetInt64(4), r.GetInt64(5)));

    public Task<IReadOnlyList<AreaReservation>> ListReservationsAsync(string area, DateTimeOffset before, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT name, bytes, at FROM area_files WHERE area = $area AND at < $before ORDER BY at LIMIT $limit",
            r => new AreaReservation(area, r.GetString(0), r.GetInt64(1), r.Time(2)),
            ("$area", area), ("$before", Millis(before)), ("$limit", limit));

    private static AreaUsage ReadArea(SqliteSession session, string area) =>
        session.Rows("SELECT bytes, files, blocked, peak_bytes, largest_file_bytes FROM areas WHERE area = $area",
                r => new AreaUsage(area, r.GetInt64(0), r.GetInt64(1), r.GetInt64(2) != 0, r.GetInt64(3), r.GetInt64(4)), ("$area", area))
            .SingleOrDefault() ?? new AreaUsage(area, 0, 0, false, 0, 0);

    private static void WriteArea(SqliteSession session, AreaUsage usage) =>
        session.Run("""
            INSERT INTO areas (area, bytes, files, blocked, peak_bytes, largest_file_bytes) VALUES ($area, $bytes, $files, $blocked, $peak, $largest)
            ON CONFLICT(area) DO UPDATE SET bytes = excluded.bytes, files = excluded.files, blocked = excluded.blocked,
                peak_bytes = excluded.peak_bytes, largest_file_bytes = excluded.largest_file_bytes
            """, ("$area", usage.Area), ("$bytes", usage.Bytes), ("$files", usage.Files), ("$blocked", usage.Blocked ? 1 : 0),
            ("$peak", usage.PeakBytes), ("$largest", usage.LargestFileBytes));

    private static void PutFile(SqliteSession session, string area, AreaFile file, DateTimeOffset at) =>
        session.Run("""
            INSERT INTO area_files (area, name, bytes, at) VALUES ($area, $name, $bytes, $at)
            ON CONFLICT(area, name) DO UPDATE SET bytes = excluded.bytes
            """, ("$area", area), ("$name", file.Name), ("$bytes", file.Bytes), ("$at", Millis(at)));

    private static long? HeldBytes(SqliteSession session, string area, string name) =>
        session.Scalar("SELECT bytes FROM area_files WHERE area = $area AND name = $name", ("$area", area), ("$name", name)) as long?;

    public Task<bool> TryAcquireMoverAsync(string dataset, string holder, int limit, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            session.Run("DELETE FROM movers WHERE expires <= $now", ("$now", Millis(now)));
            var currentHolder = session.Scalar("SELECT holder FROM movers WHERE dataset = $dataset", ("$dataset", dataset)) as string;
            if (currentHolder is not null && currentHolder != holder)
            {
                return false;
            }
            if (currentHolder is null && (long)session.Scalar("SELECT COUNT(*) FROM movers")! >= limit)
            {
                return false;
            }
            session.Run("""
                INSERT INTO movers (dataset, holder, since, expires) VALUES ($dataset, $holder, $now, $expires)
                ON CONFLICT(dataset) DO UPDATE SET expires = excluded.expires
                """, ("$dataset", dataset), ("$holder", holder), ("$now", Millis(now)), ("$expires", Millis(now + lease)));
            return true;
        }, cancellationToken);

    public Task ReleaseMoverAsync(string dataset, string holder, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("DELETE FROM movers WHERE dataset = $dataset AND holder = $holder", ("$dataset", dataset), ("$holder", holder)),
            cancellationToken);

    public Task<IReadOnlyList<MoverLease>> ListMoversAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT dataset, holder, since, expires FROM movers WHERE expires > $now ORDER BY dataset",
            r => new MoverLease(r.GetString(0), r.GetString(1), r.Time(2), r.Time(3)), ("$now", Millis(now)));

    public Task SetSettingAsync(FlowSetting setting, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("""
                INSERT INTO settings (key, value, by, at) VALUES ($key, $value, $by, $at)
                ON CONFLICT(key) DO UPDATE SET value = excluded.value, by = excluded.by, at = excluded.at
                """, ("$key", setting.Key), ("$value", setting.Value), ("$by", setting.By), ("$at", Millis(setting.At))),
            cancellationToken);

    public Task<bool> RemoveSettingAsync(string key, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("DELETE FROM settings WHERE key = $key", ("$key", key)) > 0, cancellationToken);

    public Task<IReadOnlyList<FlowSetting>> ListSettingsAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT key, value, by, at FROM settings ORDER BY key", r => new FlowSetting(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3)));
}
