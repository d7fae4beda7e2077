using Npgsql;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>The merger's durable buffer in PostgreSQL: outputs waiting per dataset, and the merged files made from them.</summary>
public sealed class PostgresMergeStore : IMergeStore, IPostgresStore
{
    private const string OutputColumns =
        "output_id, file_id, campaign, dataset, run, stream, section, raw_name, name, size, adler32, events, added_at, merged_name, raw_adler32";

    private const string MergedColumns = "name, campaign, dataset, size, adler32, events, archived, created_at, updated_at, manifest, sequence";

    private readonly PostgresDatabase _database;

    public PostgresMergeStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("merges",
        [
            """
            CREATE TABLE merge_outputs (
                output_id TEXT PRIMARY KEY,
                file_id UUID NOT NULL,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                run INTEGER NOT NULL,
                stream TEXT NOT NULL,
                section INTEGER NOT NULL,
                raw_name TEXT NOT NULL,
                name TEXT NOT NULL,
                size BIGINT NOT NULL,
                adler32 TEXT NOT NULL,
                events BIGINT NOT NULL,
                added_at BIGINT NOT NULL,
                merged_name TEXT NULL,
                raw_adler32 TEXT NULL);
            -- A dataset's waiting outputs in merge order, and the buffers' sizes, from the partial index of waiting outputs.
            CREATE INDEX ix_merge_outputs_pending ON merge_outputs(campaign, dataset, run, section, stream, output_id) WHERE merged_name IS NULL;
            CREATE INDEX ix_merge_outputs_merged ON merge_outputs(merged_name, run, section, stream, output_id) WHERE merged_name IS NOT NULL;
            CREATE INDEX ix_merge_outputs_run ON merge_outputs(campaign, dataset, run);
            CREATE TABLE merged_files (
                name TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                size BIGINT NOT NULL,
                adler32 TEXT NOT NULL,
                events BIGINT NOT NULL,
                archived BOOLEAN NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL,
                manifest TEXT NULL,
                sequence BIGINT NOT NULL);
            CREATE INDEX ix_merged_files_unarchived ON merged_files(created_at) WHERE NOT archived;
            CREATE INDEX ix_merged_files_unarchived_campaign ON merged_files(campaign) WHERE NOT archived;
            -- A dataset's files in the order they were committed: the order the archive takes them in; no number twice.
            CREATE UNIQUE INDEX ix_merged_files_sequence ON merged_files(campaign, dataset, sequence);
            """,
        ]);
    }

    public Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            await session.RunAsync($"""
                INSERT INTO merge_outputs ({OutputColumns})
                VALUES (@id, @file, @campaign, @dataset, @run, @stream, @section, @raw, @name, @size, @adler32, @events, @added, NULL, @rawAdler32)
                ON CONFLICT (output_id) DO NOTHING
                """,
                ("id", output.OutputId), ("file", output.FileId), ("campaign", output.Campaign), ("dataset", output.Dataset),
                ("run", output.Run), ("stream", output.Stream), ("section", output.Section), ("raw", output.RawName),
                ("name", output.Name), ("size", output.Size), ("adler32", output.Adler32), ("events", output.Events),
                ("added", Millis(output.AddedAt)), ("rawAdler32", output.RawAdler32));
            return (await session.RowsAsync($"SELECT {OutputColumns} FROM merge_outputs WHERE output_id = @id", ReadOutput, ("id", output.OutputId))).Single();
        }, cancellationToken);

    public Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("""
            SELECT campaign, dataset, COUNT(*), SUM(size), MIN(added_at), MAX(added_at)
            FROM merge_outputs WHERE merged_name IS NULL GROUP BY campaign, dataset ORDER BY campaign, dataset
            """,
            r => new DatasetBuffer(r.GetString(0), r.GetString(1), r.Int(2), r.Long(3), r.Time(4), r.Time(5)), cancellationToken);

    public Task<IReadOnlyList<PendingOutput>> ListPendingAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync(Pending(campaign, dataset, limit), ReadOutput, cancellationToken);

    /// <summary>A dataset's waiting outputs in merge order, from the partial index of waiting outputs.</summary>
    public static PostgresQuery Pending(string campaign, string dataset, int limit) => new($"""
        SELECT {OutputColumns} FROM merge_outputs
        WHERE campaign = @campaign AND dataset = @dataset AND merged_name IS NULL
        ORDER BY run, section, stream, output_id LIMIT @limit
        """, ("campaign", campaign), ("dataset", dataset), ("limit", limit));

    public Task<MergedFileRecord?> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken) =>
        _database.WriteAsync<MergedFileRecord?>(async session =>
        {
            // The dataset's committers take turns: each numbers its file after the last one committed.
            await session.LockAsync($"pipeline merges {merged.Campaign}/{merged.Dataset}");
            var marked = await session.RunAsync("UPDATE merge_outputs SET merged_name = @merged WHERE output_id = ANY(@ids) AND merged_name IS NULL",
                ("merged", merged.Name), ("ids", outputIds.ToArray()));
            if (marked != outputIds.Count)
            {
                throw new RefusedWrite(null);
            }
            var sequence = (long)(await session.ScalarAsync("SELECT COALESCE(MAX(sequence), 0) + 1 FROM merged_files WHERE campaign = @campaign AND dataset = @dataset",
                ("campaign", merged.Campaign), ("dataset", merged.Dataset)))!;
            await session.RunAsync("""
                INSERT INTO merged_files (name, campaign, dataset, size, adler32, events, archived, created_at, updated_at, manifest, sequence)
                VALUES (@name, @campaign, @dataset, @size, @adler32, @events, FALSE, @created, @created, @manifest, @sequence)
                """,
                ("name", merged.Name), ("campaign", merged.Campaign), ("dataset", merged.Dataset), ("size", merged.Size),
                ("adler32", merged.Adler32), ("events", merged.Events), ("created", Millis(merged.CreatedAt)), ("manifest", merged.Manifest),
                ("sequence", sequence));
            return merged with { Archived = false, UpdatedAt = merged.CreatedAt, Sequence = sequence };
        }, cancellationToken);

    public async Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {MergedColumns} FROM merged_files WHERE name = @name", ReadMerged, cancellationToken, ("name", name))).SingleOrDefault();

    public async Task<MergedFileRecord?> GetMergedFileAsync(string campaign, string dataset, long sequence, CancellationToken cancellationToken) =>
        (await _database.RowsAsync($"SELECT {MergedColumns} FROM merged_files WHERE campaign = @campaign AND dataset = @dataset AND sequence = @sequence",
            ReadMerged, cancellationToken, ("campaign", campaign), ("dataset", dataset), ("sequence", sequence))).SingleOrDefault();

    public Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {OutputColumns} FROM merge_outputs WHERE merged_name = @merged ORDER BY run, section, stream, output_id",
            ReadOutput, cancellationToken, ("merged", mergedName));

    public Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {MergedColumns} FROM merged_files WHERE NOT archived AND updated_at < @before ORDER BY created_at",
            ReadMerged, cancellationToken, ("before", Millis(updatedBefore)));

    public async Task<IReadOnlyDictionary<string, int>> CountUnarchivedAsync(CancellationToken cancellationToken) =>
        (await _database.RowsAsync("SELECT campaign, COUNT(*) FROM merged_files WHERE NOT archived GROUP BY campaign",
            r => (Campaign: r.GetString(0), Count: r.Int(1)), cancellationToken)).ToDictionary(c => c.Campaign, c => c.Count, StringComparer.Ordinal);

    public Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync("UPDATE merged_files SET archived = TRUE, updated_at = @now WHERE name = @name AND NOT archived",
            ("now", Millis(DateTimeOffset.UtcNow)), ("name", mergedName)), cancellationToken);

    public async Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken) =>
        (await _database.RowsAsync("SELECT run, COUNT(*) FROM merge_outputs WHERE campaign = @campaign AND dataset = @dataset AND run BETWEEN @from AND @to GROUP BY run",
            r => (Run: r.GetInt32(0), Count: r.Int(1)), cancellationToken, ("campaign", campaign), ("dataset", dataset), ("from", fromRun), ("to", toRun)))
            .ToDictionary(c => c.Run, c => c.Count);

    public Task<int?> HighestMergedRunAsync(string campaign, string dataset, CancellationToken cancellationToken) =>
        _database.ReadAsync(async session => await session.ScalarAsync("SELECT MAX(run) FROM merge_outputs WHERE campaign = @campaign AND dataset = @dataset AND merged_name IS NOT NULL",
            ("campaign", campaign), ("dataset", dataset)) is int run ? (int?)run : null, cancellationToken);

    private static MergedFileRecord ReadMerged(NpgsqlDataReader r) =>
        new(r.GetString(0), r.GetString(1), r.GetString(2), r.Long(3), r.GetString(4), r.Long(5), r.GetBoolean(6), r.Time(7), r.Time(8), r.StringOrNull(9), r.Long(10));

    private static PendingOutput ReadOutput(NpgsqlDataReader r) => new(
        r.GetString(0), r.GetGuid(1), r.GetString(2), r.GetString(3), r.GetInt32(4), r.GetString(5), r.GetInt32(6),
        r.GetString(7), r.GetString(8), r.Long(9), r.GetString(10), r.Long(11), r.Time(12), r.StringOrNull(13), r.StringOrNull(14));
}
