using Pipeline.Contracts;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>The merger's ledger of each run's files in SQLite: one row per file, one per file and dataset it produced.</summary>
public sealed class SqliteRunLedger : IRunLedger, ISqliteStore
{
    private readonly SqliteDatabase _database;

    public SqliteRunLedger(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
            CREATE TABLE IF NOT EXISTS run_files (
                file_id TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                run INTEGER NOT NULL,
                open INTEGER NOT NULL,
                sequence INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_run_files_open ON run_files(campaign, open, run);
            CREATE INDEX IF NOT EXISTS ix_run_files_run ON run_files(campaign, run);
            CREATE TABLE IF NOT EXISTS run_file_outputs (
                file_id TEXT NOT NULL,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                run INTEGER NOT NULL,
                outputs INTEGER NOT NULL,
                PRIMARY KEY (file_id, dataset));
            CREATE INDEX IF NOT EXISTS ix_run_file_outputs ON run_file_outputs(campaign, dataset, run);
            """));
    }

    public Task RecordAsync(RunFileProgress progress, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            var id = Key(progress.FileId);
            if (session.Scalar("SELECT sequence FROM run_files WHERE file_id = $id", ("$id", id)) is long known && known >= progress.Sequence)
            {
                return 0;
            }
            session.Run("""
                INSERT INTO run_files (file_id, campaign, run, open, sequence) VALUES ($id, $campaign, $run, $open, $sequence)
                ON CONFLICT (file_id) DO UPDATE SET open = excluded.open, sequence = excluded.sequence
                """, ("$id", id), ("$campaign", progress.Campaign), ("$run", progress.Run), ("$open", progress.Open ? 1 : 0), ("$sequence", progress.Sequence));
            session.Run("DELETE FROM run_file_outputs WHERE file_id = $id", ("$id", id));
            foreach (var outputs in progress.Outputs)
            {
                session.Run("""
                    INSERT INTO run_file_outputs (file_id, campaign, dataset, run, outputs) VALUES ($id, $campaign, $dataset, $run, $outputs)
                    """, ("$id", id), ("$campaign", progress.Campaign), ("$dataset", outputs.Dataset), ("$run", progress.Run), ("$outputs", outputs.Outputs));
            }
            return 1;
        }, cancellationToken);

    public Task<IReadOnlyDictionary<int, RunProgress>> RunProgressAsync(string campaign, IReadOnlyCollection<int> runs, CancellationToken cancellationToken) =>
        _database.ReadAsync<IReadOnlyDictionary<int, RunProgress>>(session =>
        {
            var progress = new Dictionary<int, RunProgress>();
            using var command = session.Command("""
                SELECT COUNT(*), COALESCE(SUM(open = 0), 0) FROM run_files WHERE campaign = $campaign AND run = $run
                """, ("$run", 0), ("$campaign", campaign));
            foreach (var run in runs.Distinct())
            {
                command.Parameters["$run"].Value = run;
                progress[run] = SqliteSession.Rows(command, r => new RunProgress(r.GetInt32(0), r.GetInt32(1))).Single();
            }
            return progress;
        });

    public Task<int?> OldestOpenRunAsync(string campaign, CancellationToken cancellationToken) =>
        _database.ReadAsync(session => session.Scalar("SELECT MIN(run) FROM run_files WHERE campaign = $campaign AND open = 1", ("$campaign", campaign)) is long run
            ? (int?)run
            : null);

    public async Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken) =>
        (await _database.RowsAsync("""
            SELECT run, SUM(outputs) FROM run_file_outputs
            WHERE campaign = $campaign AND dataset = $dataset AND run BETWEEN $from AND $to GROUP BY run
            """, r => (Run: r.GetInt32(0), Count: r.GetInt32(1)), ("$campaign", campaign), ("$dataset", dataset), ("$from", fromRun), ("$to", toRun)))
            .ToDictionary(c => c.Run, c => c.Count);
}
