using Pipeline.Contracts;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>The merger's ledger of each run's files in PostgreSQL: one row per file, one per file and dataset it produced.</summary>
public sealed class PostgresRunLedger : IRunLedger, IPostgresStore
{
    private readonly PostgresDatabase _database;

    public PostgresRunLedger(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("run_ledger",
        [
            """
            CREATE TABLE run_files (
                file_id UUID PRIMARY KEY,
                campaign TEXT NOT NULL,
                run INTEGER NOT NULL,
                open BOOLEAN NOT NULL,
                sequence BIGINT NOT NULL);
            CREATE INDEX ix_run_files_open ON run_files(campaign, run) WHERE open;
            CREATE INDEX ix_run_files_run ON run_files(campaign, run);
            CREATE TABLE run_file_outputs (
                file_id UUID NOT NULL,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                run INTEGER NOT NULL,
                outputs INTEGER NOT NULL,
                PRIMARY KEY (file_id, dataset));
            CREATE INDEX ix_run_file_outputs ON run_file_outputs(campaign, dataset, run);
            """,
        ]);
    }

    public Task RecordAsync(RunFileProgress progress, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            // Only a later report than the one recorded changes the file's row (and locks it, so its outputs follow the same report).
            if (await session.RunAsync("""
                    INSERT INTO run_files AS recorded (file_id, campaign, run, open, sequence) VALUES (@id, @campaign, @run, @open, @sequence)
                    ON CONFLICT (file_id) DO UPDATE SET open = excluded.open, sequence = excluded.sequence WHERE recorded.sequence < excluded.sequence
                    """, ("id", progress.FileId), ("campaign", progress.Campaign), ("run", progress.Run), ("open", progress.Open), ("sequence", progress.Sequence)) == 0)
            {
                return 0;
            }
            await session.RunAsync("DELETE FROM run_file_outputs WHERE file_id = @id", ("id", progress.FileId));
            foreach (var outputs in progress.Outputs)
            {
                await session.RunAsync("""
                    INSERT INTO run_file_outputs (file_id, campaign, dataset, run, outputs) VALUES (@id, @campaign, @dataset, @run, @outputs)
                    """, ("id", progress.FileId), ("campaign", progress.Campaign), ("dataset", outputs.Dataset), ("run", progress.Run), ("outputs", outputs.Outputs));
            }
            return 1;
        }, cancellationToken);

    public async Task<IReadOnlyDictionary<int, RunProgress>> RunProgressAsync(string campaign, IReadOnlyCollection<int> runs, CancellationToken cancellationToken)
    {
        var counted = await _database.RowsAsync("""
            SELECT run, COUNT(*), COUNT(*) FILTER (WHERE NOT open) FROM run_files WHERE campaign = @campaign AND run = ANY(@runs) GROUP BY run
            """, r => (Run: r.GetInt32(0), Progress: new RunProgress(r.Int(1), r.Int(2))), cancellationToken, ("campaign", campaign), ("runs", runs.Distinct().ToArray()));
        var progress = runs.Distinct().ToDictionary(run => run, _ => new RunProgress(0, 0));
        foreach (var (run, runProgress) in counted)
        {
            progress[run] = runProgress;
        }
        return progress;
    }

    public Task<int?> OldestOpenRunAsync(string campaign, CancellationToken cancellationToken) =>
        _database.ReadAsync(async session => await session.ScalarAsync("SELECT MIN(run) FROM run_files WHERE campaign = @campaign AND open", ("campaign", campaign)) is int run
            ? (int?)run
            : null, cancellationToken);

    public async Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken) =>
        (await _database.RowsAsync("""
            SELECT run, SUM(outputs) FROM run_file_outputs
            WHERE campaign = @campaign AND dataset = @dataset AND run BETWEEN @from AND @to GROUP BY run
            """, r => (Run: r.GetInt32(0), Count: r.Int(1)), cancellationToken, ("campaign", campaign), ("dataset", dataset), ("from", fromRun), ("to", toRun)))
            .ToDictionary(c => c.Run, c => c.Count);
}
