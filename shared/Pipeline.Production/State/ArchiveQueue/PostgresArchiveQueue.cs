using System.Text.Json;
using Npgsql;
using Pipeline.Contracts;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>The archiver's queue in PostgreSQL: one row per merged file, its sources as JSON.</summary>
public sealed class PostgresArchiveQueue : IArchiveQueue, IPostgresStore
{
    private const string Columns = "name, campaign, dataset, sequence, size, adler32, events, merged_at, manifest, sources::text, state";

    private readonly PostgresDatabase _database;

    public PostgresArchiveQueue(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("archive_queue",
        [
            """
            CREATE TABLE archive_queue (
                name TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                sequence BIGINT NOT NULL,
                size BIGINT NOT NULL,
                adler32 TEXT NOT NULL,
                events BIGINT NOT NULL,
                merged_at BIGINT NOT NULL,
                manifest TEXT NULL,
                sources JSONB NOT NULL,
                state INTEGER NOT NULL);
            -- A dataset's files in their order, and the last written among them, from one index.
            CREATE INDEX ix_archive_queue_order ON archive_queue(campaign, dataset, sequence);
            CREATE INDEX ix_archive_queue_written ON archive_queue(campaign, dataset, state, sequence);
            """,
        ]);
    }

    public Task<QueuedMergedFile> EnqueueAsync(QueuedMergedFile file, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            await session.RunAsync("""
                INSERT INTO archive_queue (name, campaign, dataset, sequence, size, adler32, events, merged_at, manifest, sources, state)
                VALUES (@name, @campaign, @dataset, @sequence, @size, @adler32, @events, @mergedAt, @manifest, @sources::jsonb, @state)
                ON CONFLICT (name) DO NOTHING
                """,
                ("name", file.Name), ("campaign", file.Campaign), ("dataset", file.Dataset), ("sequence", file.Sequence), ("size", file.Size),
                ("adler32", file.Adler32), ("events", file.Events), ("mergedAt", Millis(file.MergedAt)), ("manifest", file.Manifest),
                ("sources", JsonSerializer.Serialize(file.Sources, SqliteDatabase.Json)), ("state", (int)ArchivingState.Waiting));
            return (await session.RowsAsync($"SELECT {Columns} FROM archive_queue WHERE name = @name", Read, ("name", file.Name))).Single();
        }, cancellationToken);

    public async Task<QueuedMergedFile?> GetAsync(string name, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {Columns} FROM archive_queue WHERE name = @name", Read, cancellationToken, ("name", name))).SingleOrDefault();

    public Task<IReadOnlyList<QueuedMergedFile>> ListFromAsync(string campaign, string dataset, long fromSequence, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync(From(campaign, dataset, fromSequence, limit), Read, cancellationToken);

    /// <summary>A dataset's files in their order from a number on.</summary>
    public static PostgresQuery From(string campaign, string dataset, long fromSequence, int limit) => new($"""
        SELECT {Columns} FROM archive_queue WHERE campaign = @campaign AND dataset = @dataset AND sequence >= @from ORDER BY sequence LIMIT @limit
        """, ("campaign", campaign), ("dataset", dataset), ("from", fromSequence), ("limit", limit));

    public Task<long> LastWrittenAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        _database.ReadAsync(async session => Convert.ToInt64(await session.ScalarAsync("""
            SELECT COALESCE(MAX(sequence), 0) FROM archive_queue WHERE campaign = @campaign AND dataset = @dataset AND state >= @written
            """, ("campaign", campaign), ("dataset", dataset), ("written", (int)ArchivingState.Written)), System.Globalization.CultureInfo.InvariantCulture), cancellationToken);

    public Task MarkAsync(string name, ArchivingState state, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync("UPDATE archive_queue SET state = @state WHERE name = @name AND state < @state",
            ("state", (int)state), ("name", name)), cancellationToken);

    private static QueuedMergedFile Read(NpgsqlDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.Long(3), r.Long(4), r.GetString(5), r.Long(6), r.Time(7), r.StringOrNull(8),
        JsonSerializer.Deserialize<List<MergedSource>>(r.GetString(9), SqliteDatabase.Json) ?? [], (ArchivingState)r.GetInt32(10));
}
