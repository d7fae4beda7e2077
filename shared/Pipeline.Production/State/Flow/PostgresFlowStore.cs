using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>
/// Flow control in PostgreSQL: the areas' ledgers (file by file and the area's totals), the movers and the operators'
/// settings. Every change to an area's ledger first locks the area's row, so that writers of one area take turns and
/// its totals always match its files; the movers are counted under one advisory lock.
/// </summary>
public sealed class PostgresFlowStore : IFlowStore, IPostgresStore
{
    private readonly PostgresDatabase _database;

    public PostgresFlowStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("flow",
        [
            """
            CREATE TABLE area_files (
                area TEXT NOT NULL,
                name TEXT NOT NULL,
                bytes BIGINT NOT NULL,
                at BIGINT NOT NULL,
                PRIMARY KEY (area, name));
            CREATE INDEX ix_area_files_at ON area_files(area, at);
            CREATE TABLE areas (
                area TEXT PRIMARY KEY,
                bytes BIGINT NOT NULL,
                files BIGINT NOT NULL,
                blocked BOOLEAN NOT NULL,
                peak_bytes BIGINT NOT NULL,
                largest_file_bytes BIGINT NOT NULL);
            CREATE TABLE movers (
                dataset TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                since BIGINT NOT NULL,
                expires BIGINT NOT NULL);
            CREATE TABLE settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                by TEXT NOT NULL,
                at BIGINT NOT NULL);
            """,
        ]);
    }

    public Task<bool> TryReserveAsync(string area, string name, long bytes, AreaLimits limits, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            var usage = await LockAreaAsync(session, area);
            var held = await HeldBytesAsync(session, area, name);
            if (held is null)
            {
                if (AreaLedger.Blocked(usage.Blocked, usage.Bytes, limits))
                {
                    // A refusal writes only when it blocks the area: waiting stages ask again and again.
                    if (!usage.Blocked)
                    {
                        await WriteAreaAsync(session, usage with { Blocked = true });
                    }
                    return false;
                }
                usage = usage with { Files = usage.Files + 1, Blocked = false };
            }
            await PutFileAsync(session, area, new AreaFile(name, bytes), at);
            var total = usage.Bytes - (held ?? 0) + bytes;
            await WriteAreaAsync(session, usage with
            {
                Bytes = total,
                PeakBytes = Math.Max(usage.PeakBytes, total),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, bytes),
            });
            return true;
        }, cancellationToken);

    public Task ReplaceReservationAsync(string area, string name, IReadOnlyList<AreaFile> files, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            var usage = await LockAreaAsync(session, area);
            var removed = await HeldBytesAsync(session, area, name);
            var bytes = usage.Bytes - (removed ?? 0);
            var count = usage.Files - (removed is null ? 0 : 1);
            await session.RunAsync("DELETE FROM area_files WHERE area = @area AND name = @name", ("area", area), ("name", name));
            foreach (var file in files)
            {
                var held = await HeldBytesAsync(session, area, file.Name);
                bytes += file.Bytes - (held ?? 0);
                count += held is null ? 1 : 0;
                await PutFileAsync(session, area, file, at);
            }
            await WriteAreaAsync(session, usage with
            {
                Bytes = bytes,
                Files = count,
                PeakBytes = Math.Max(usage.PeakBytes, bytes),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, files.Count == 0 ? 0 : files.Max(f => f.Bytes)),
            });
            return true;
        }, cancellationToken);

    public Task ReleaseAsync(string area, string name, SingletonFence? fence, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            await PostgresSingletonLeaseStore.RequireAsync(session, fence);
            var usage = await LockAreaAsync(session, area, create: false);
            var held = usage is null ? null : await HeldBytesAsync(session, area, name);
            if (usage is null || held is null)
            {
                return false;
            }
            await session.RunAsync("DELETE FROM area_files WHERE area = @area AND name = @name", ("area", area), ("name", name));
            await WriteAreaAsync(session, usage with { Bytes = usage.Bytes - held.Value, Files = usage.Files - 1 });
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<AreaUsage>> ListAreaUsageAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT area, bytes, files, blocked, peak_bytes, largest_file_bytes FROM areas ORDER BY area",
            r => new AreaUsage(r.GetString(0), r.Long(1), r.Long(2), r.GetBoolean(3), r.Long(4), r.Long(5)), cancellationToken);

    public Task<IReadOnlyList<AreaReservation>> ListReservationsAsync(string area, DateTimeOffset before, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync(Reservations(area, before, limit), r => new AreaReservation(area, r.GetString(0), r.Long(1), r.Time(2)), cancellationToken);

    /// <summary>An area's oldest reservations, for the ledger's sweep.</summary>
    public static PostgresQuery Reservations(string area, DateTimeOffset before, int limit) =>
        new("SELECT name, bytes, at FROM area_files WHERE area = @area AND at < @before ORDER BY at LIMIT @limit",
            ("area", area), ("before", Millis(before)), ("limit", limit));

    /// <summary>The area's totals, its row locked until the write commits (made first if the area is new).</summary>
    private static async Task<AreaUsage> LockAreaAsync(PostgresSession session, string area) => (await LockAreaAsync(session, area, create: true))!;

    /// <summary>The area's totals, its row locked until the write commits; null for an area never reserved in unless <paramref name="create"/>.</summary>
    private static async Task<AreaUsage?> LockAreaAsync(PostgresSession session, string area, bool create)
    {
        if (create)
        {
            await session.RunAsync("""
            INSERT INTO areas (area, bytes, files, blocked, peak_bytes, largest_file_bytes) VALUES (@area, 0, 0, FALSE, 0, 0)
            ON CONFLICT (area) DO NOTHING
            """, ("area", area));
        }
        return (await session.RowsAsync("SELECT bytes, files, blocked, peak_bytes, largest_file_bytes FROM areas WHERE area = @area FOR UPDATE",
            r => new AreaUsage(area, r.Long(0), r.Long(1), r.GetBoolean(2), r.Long(3), r.Long(4)), ("area", area))).SingleOrDefault();
    }

    private static Task WriteAreaAsync(PostgresSession session, AreaUsage usage) =>
        session.RunAsync("""
            UPDATE areas SET bytes = @bytes, files = @files, blocked = @blocked, peak_bytes = @peak, largest_file_bytes = @largest WHERE area = @area
            """, ("area", usage.Area), ("bytes", usage.Bytes), ("files", usage.Files), ("blocked", usage.Blocked),
            ("peak", usage.PeakBytes), ("largest", usage.LargestFileBytes));

    private static Task PutFileAsync(PostgresSession session, string area, AreaFile file, DateTimeOffset at) =>
        session.RunAsync("""
            INSERT INTO area_files (area, name, bytes, at) VALUES (@area, @name, @bytes, @at)
            ON CONFLICT (area, name) DO UPDATE SET bytes = excluded.bytes
            """, ("area", area), ("name", file.Name), ("bytes", file.Bytes), ("at", Millis(at)));

    private static async Task<long?> HeldBytesAsync(PostgresSession session, string area, string name) =>
        await session.ScalarAsync("SELECT bytes FROM area_files WHERE area = @area AND name = @name", ("area", area), ("name", name)) as long?;

    /// <summary>Leases are judged by the server's clock, not <paramref name="callerNow"/>: archivers on several hosts share them.</summary>
    public Task<bool> TryAcquireMoverAsync(string dataset, string holder, int limit, DateTimeOffset callerNow, TimeSpan lease, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            // The limit counts every mover: takers queue on one lock, so two cannot both take the last place.
            await session.LockAsync("pipeline movers");
            var now = DateTimeOffset.FromUnixTimeMilliseconds(await session.ServerMillisAsync());
            await session.RunAsync("DELETE FROM movers WHERE expires <= @now", ("now", Millis(now)));
            var currentHolder = await session.ScalarAsync("SELECT holder FROM movers WHERE dataset = @dataset", ("dataset", dataset)) as string;
            if (currentHolder is not null && currentHolder != holder)
            {
                return false;
            }
            if (currentHolder is null && (long)(await session.ScalarAsync("SELECT COUNT(*) FROM movers"))! >= limit)
            {
                return false;
            }
            await session.RunAsync("""
                INSERT INTO movers (dataset, holder, since, expires) VALUES (@dataset, @holder, @now, @expires)
                ON CONFLICT (dataset) DO UPDATE SET expires = excluded.expires
                """, ("dataset", dataset), ("holder", holder), ("now", Millis(now)), ("expires", Millis(now + lease)));
            return true;
        }, cancellationToken);

    public Task ReleaseMoverAsync(string dataset, string holder, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync("DELETE FROM movers WHERE dataset = @dataset AND holder = @holder", ("dataset", dataset), ("holder", holder)),
            cancellationToken);

    /// <summary>The live leases, by the server's clock (as they are taken), not <paramref name="callerNow"/>.</summary>
    public Task<IReadOnlyList<MoverLease>> ListMoversAsync(DateTimeOffset callerNow, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT dataset, holder, since, expires FROM movers WHERE expires > {PostgresSession.ServerMillis} ORDER BY dataset",
            r => new MoverLease(r.GetString(0), r.GetString(1), r.Time(2), r.Time(3)), cancellationToken);

    public Task SetSettingAsync(FlowSetting setting, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync("""
                INSERT INTO settings (key, value, by, at) VALUES (@key, @value, @by, @at)
                ON CONFLICT (key) DO UPDATE SET value = excluded.value, by = excluded.by, at = excluded.at
                """, ("key", setting.Key), ("value", setting.Value), ("by", setting.By), ("at", Millis(setting.At))),
            cancellationToken);

    public Task<bool> RemoveSettingAsync(string key, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session => await session.RunAsync("DELETE FROM settings WHERE key = @key", ("key", key)) > 0, cancellationToken);

    public Task<IReadOnlyList<FlowSetting>> ListSettingsAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT key, value, by, at FROM settings ORDER BY key", r => new FlowSetting(r.GetString(0), r.GetString(1), r.GetString(2), r.Time(3)), cancellationToken);
}
