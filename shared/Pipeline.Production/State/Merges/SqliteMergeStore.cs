using Microsoft.Data.Sqlite;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>The merger's durable buffer in SQLite: outputs waiting per dataset, and the merged files made from them.</summary>
public sealed class SqliteMergeStore : IMergeStore, ISqliteStore
{
    private const string OutputColumns =
        "output_id, file_id, campaign, dataset, run, stream, section, raw_name, name, size, adler32, events, added_at, merged_name, raw_adler32";

    private const string MergedColumns = "name, campaign, dataset, size, adler32, events, archived, created_at, updated_at, manifest, sequence";

    private readonly SqliteDatabase _database;

    public SqliteMergeStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session =>
        {
            session.Run("""
                CREATE TABLE IF NOT EXISTS merge_outputs (
                    output_id TEXT PRIMARY KEY,
                    file_id TEXT NOT NULL,
                    campaign TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    run INTEGER NOT NULL,
                    stream TEXT NOT NULL,
                    section INTEGER NOT NULL,
                    raw_name TEXT NOT NULL,
                    name TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    adler32 TEXT NOT NULL,
                    events INTEGER NOT NULL,
                    added_at INTEGER NOT NULL,
                    merged_name TEXT NULL);
                CREATE INDEX IF NOT EXISTS ix_merge_outputs_pending ON merge_outputs(campaign, dataset, merged_name, run, section);
                CREATE INDEX IF NOT EXISTS ix_merge_outputs_merged ON merge_outputs(merged_name);
                CREATE TABLE IF NOT EXISTS merged_files (
                    name TEXT PRIMARY KEY,
                    campaign TEXT NOT NULL,
                    dataset TEXT NOT NULL,
                    size INTEGER NOT NULL,
                    adler32 TEXT NOT NULL,
                    events INTEGER NOT NULL,
                    archived INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS ix_merged_files_archived ON merged_files(archived, updated_at);
                -- The archiver reads its own queue now: the index its reads of this table needed goes.
                DROP INDEX IF EXISTS ix_merged_files_dataset;
                """);
            session.AddColumnIfMissing("merged_files", "manifest", "TEXT NULL");
            session.AddColumnIfMissing("merge_outputs", "raw_adler32", "TEXT NULL");
            // A dataset's files in the order they were committed: the order the archive takes them in.
            session.AddColumnIfMissing("merged_files", "sequence", "INTEGER NOT NULL DEFAULT 0");
            session.Run("CREATE INDEX IF NOT EXISTS ix_merged_files_sequence ON merged_files(campaign, dataset, sequence);");
        });
    }

    public Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            session.Run($"""
                INSERT INTO merge_outputs ({OutputColumns})
                VALUES ($id, $file, $campaign, $dataset, $run, $stream, $section, $raw, $name, $size, $adler32, $events, $added, NULL, $rawAdler32)
                ON CONFLICT(output_id) DO NOTHING
                """,
                ("$id", output.OutputId), ("$file", Key(output.FileId)), ("$campaign", output.Campaign), ("$dataset", output.Dataset),
                ("$run", output.Run), ("$stream", output.Stream), ("$section", output.Section), ("$raw", output.RawName),
                ("$name", output.Name), ("$size", output.Size), ("$adler32", output.Adler32), ("$events", output.Events),
                ("$added", Millis(output.AddedAt)), ("$rawAdler32", output.RawAdler32));
            return session.Rows($"SELECT {OutputColumns} FROM merge_outputs WHERE output_id = $id", ReadOutput, ("$id", output.OutputId)).Single();
        }, cancellationToken);

    public Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("""
            SELECT campaign, dataset, COUNT(*), SUM(size), MIN(added_at), MAX(added_at)
            FROM merge_outputs WHERE merged_name IS NULL GROUP BY campaign, dataset ORDER BY campaign, dataset
            """,
            r => new DatasetBuffer(r.GetString(0), r.GetString(1), r.GetInt32(2), r.GetInt64(3), r.Time(4), r.Time(5)));

    public Task<IReadOnlyList<PendingOutput>> ListPendingAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync($"""
            SELECT {OutputColumns} FROM merge_outputs
            WHERE campaign = $campaign AND dataset = $dataset AND merged_name IS NULL
            ORDER BY run, section, stream, output_id LIMIT $limit
            """, ReadOutput, ("$campaign", campaign), ("$dataset", dataset), ("$limit", limit));

    public Task<MergedFileRecord?> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken) =>
        _database.WriteAsync<MergedFileRecord?>(session =>
        {
            var marked = outputIds.Sum(id => session.Run("UPDATE merge_outputs SET merged_name = $merged WHERE output_id = $id AND merged_name IS NULL",
                ("$merged", merged.Name), ("$id", id)));
            if (marked != outputIds.Count)
            {
                throw new RefusedWrite(null);
            }
            // The one writer numbers the dataset's files: no two commits can take the same number.
            var sequence = Convert.ToInt64(session.Scalar("SELECT COALESCE(MAX(sequence), 0) + 1 FROM merged_files WHERE campaign = $campaign AND dataset = $dataset",
                ("$campaign", merged.Campaign), ("$dataset", merged.Dataset)), System.Globalization.CultureInfo.InvariantCulture);
            session.Run("""
                INSERT INTO merged_files (name, campaign, dataset, size, adler32, events, archived, created_at, updated_at, manifest, sequence)
                VALUES ($name, $campaign, $dataset, $size, $adler32, $events, 0, $created, $created, $manifest, $sequence)
                """,
                ("$name", merged.Name), ("$campaign", merged.Campaign), ("$dataset", merged.Dataset), ("$size", merged.Size),
                ("$adler32", merged.Adler32), ("$events", merged.Events), ("$created", Millis(merged.CreatedAt)), ("$manifest", merged.Manifest),
                ("$sequence", sequence));
            return merged with { Archived = false, UpdatedAt = merged.CreatedAt, Sequence = sequence };
        }, cancellationToken);

    public async Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {MergedColumns} FROM merged_files WHERE name = $name", ReadMerged, ("$name", name))).SingleOrDefault();

    public async Task<MergedFileRecord?> GetMergedFileAsync(string campaign, string dataset, long sequence, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {MergedColumns} FROM merged_files WHERE campaign = $campaign AND dataset = $dataset AND sequence = $sequence",
            ReadMerged, ("$campaign", campaign), ("$dataset", dataset), ("$sequence", sequence))).SingleOrDefault();

    public Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {OutputColumns} FROM merge_outputs WHERE merged_name = $merged ORDER BY run, section, stream, output_id",
            ReadOutput, ("$merged", mergedName));

    public Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {MergedColumns} FROM merged_files WHERE archived = 0 AND updated_at < $before ORDER BY created_at",
            ReadMerged, ("$before", Millis(updatedBefore)));

    public async Task<IReadOnlyDictionary<string, int>> CountUnarchivedAsync(CancellationToken cancellationToken) =>
        (await _database.RowsAsync("SELECT campaign, COUNT(*) FROM merged_files WHERE archived = 0 GROUP BY campaign",
            r => (Campaign: r.GetString(0), Count: r.GetInt32(1)))).ToDictionary(c => c.Campaign, c => c.Count, StringComparer.Ordinal);

    public Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("UPDATE merged_files SET archived = 1, updated_at = $now WHERE name = $name AND archived = 0",
            ("$now", Millis(DateTimeOffset.UtcNow)), ("$name", mergedName)), cancellationToken);

    public async Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken) =>
        (await _database.RowsAsync("SELECT run, COUNT(*) FROM merge_outputs WHERE campaign = $campaign AND dataset = $dataset AND run BETWEEN $from AND $to GROUP BY run",
            r => (Run: r.GetInt32(0), Count: r.GetInt32(1)), ("$campaign", campaign), ("$dataset", dataset), ("$from", fromRun), ("$to", toRun)))
            .ToDictionary(c => c.Run, c => c.Count);

    public Task<int?> HighestMergedRunAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        _database.ReadAsync(session => session.Scalar("SELECT MAX(run) FROM merge_outputs WHERE campaign = $campaign AND dataset = $dataset AND merged_name IS NOT NULL",
            ("$campaign", campaign), ("$dataset", dataset)) is { } run ? (int?)Convert.ToInt32(run, System.Globalization.CultureInfo.InvariantCulture) : null);

    private static MergedFileRecord ReadMerged(SqliteDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt64(3), r.GetString(4), r.GetInt64(5), r.GetInt64(6) != 0, r.Time(7), r.Time(8), r.StringOrNull(9), r.GetInt64(10));

    private static PendingOutput ReadOutput(SqliteDataReader r) => new(
        r.GetString(0), Guid.Parse(r.GetString(1)), r.GetString(2), r.GetString(3), r.GetInt32(4), r.GetString(5), r.GetInt32(6),
        r.GetString(7), r.GetString(8), r.GetInt64(9), r.GetString(10), r.GetInt64(11), r.Time(12), r.StringOrNull(13), r.StringOrNull(14));
}
