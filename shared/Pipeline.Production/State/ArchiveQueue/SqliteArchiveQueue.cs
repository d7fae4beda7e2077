using System.Text.Json;
using Microsoft.Data.Sqlite;
using Pipeline.Contracts;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>The archiver's queue in SQLite: one row per merged file, its sources as JSON.</summary>
public sealed class SqliteArchiveQueue : IArchiveQueue, ISqliteStore
{
    private const string Columns = "name, campaign, dataset, sequence, size, adler32, events, merged_at, manifest, sources, state";

    private readonly SqliteDatabase _database;

    public SqliteArchiveQueue(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
            CREATE TABLE IF NOT EXISTS archive_queue (
                name TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                sequence INTEGER NOT NULL,
                size INTEGER NOT NULL,
                adler32 TEXT NOT NULL,
                events INTEGER NOT NULL,
                merged_at INTEGER NOT NULL,
                manifest TEXT NULL,
                sources TEXT NOT NULL,
                state INTEGER NOT NULL);
            -- A dataset's files in their order, and the last written among them, from one index.
            CREATE INDEX IF NOT EXISTS ix_archive_queue_order ON archive_queue(campaign, dataset, sequence);
            CREATE INDEX IF NOT EXISTS ix_archive_queue_written ON archive_queue(campaign, dataset, state, sequence);
            """));
    }

    public Task<QueuedMergedFile> EnqueueAsync(QueuedMergedFile file, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            session.Run($"""
                INSERT INTO archive_queue ({Columns})
                VALUES ($name, $campaign, $dataset, $sequence, $size, $adler32, $events, $mergedAt, $manifest, $sources, $state)
                ON CONFLICT(name) DO NOTHING
                """,
                ("$name", file.Name), ("$campaign", file.Campaign), ("$dataset", file.Dataset), ("$sequence", file.Sequence), ("$size", file.Size),
                ("$adler32", file.Adler32), ("$events", file.Events), ("$mergedAt", Millis(file.MergedAt)), ("$manifest", file.Manifest),
                ("$sources", JsonSerializer.Serialize(file.Sources, SqliteDatabase.Json)), ("$state", (int)ArchivingState.Waiting));
            return session.Rows($"SELECT {Columns} FROM archive_queue WHERE name = $name", Read, ("$name", file.Name)).Single();
        }, cancellationToken);

    public async Task<QueuedMergedFile?> GetAsync(string name, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {Columns} FROM archive_queue WHERE name = $name", Read, ("$name", name))).SingleOrDefault();

    public Task<IReadOnlyList<QueuedMergedFile>> ListFromAsync(string campaign, string dataset, long fromSequence, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync($"""
            SELECT {Columns} FROM archive_queue WHERE campaign = $campaign AND dataset = $dataset AND sequence >= $from ORDER BY sequence LIMIT $limit
            """, Read, ("$campaign", campaign), ("$dataset", dataset), ("$from", fromSequence), ("$limit", limit));

    public Task<long> LastWrittenAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        _database.ReadAsync(session => Convert.ToInt64(session.Scalar("""
            SELECT COALESCE(MAX(sequence), 0) FROM archive_queue WHERE campaign = $campaign AND dataset = $dataset AND state >= $written
            """, ("$campaign", campaign), ("$dataset", dataset), ("$written", (int)ArchivingState.Written)), System.Globalization.CultureInfo.InvariantCulture));

    public Task MarkAsync(string name, ArchivingState state, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("UPDATE archive_queue SET state = $state WHERE name = $name AND state < $state",
            ("$state", (int)state), ("$name", name)), cancellationToken);

    private static QueuedMergedFile Read(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetInt64(4), r.GetString(5), r.GetInt64(6), r.Time(7), r.StringOrNull(8),
        JsonSerializer.Deserialize<List<MergedSource>>(r.GetString(9), SqliteDatabase.Json) ?? [], (ArchivingState)r.GetInt32(10));
}
