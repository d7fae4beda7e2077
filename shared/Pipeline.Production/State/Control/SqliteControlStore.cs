using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>What operators have paused, in SQLite.</summary>
public sealed class SqliteControlStore : IControlStore, ISqliteStore
{
    private readonly SqliteDatabase _database;

    public SqliteControlStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("CREATE TABLE IF NOT EXISTS paused (stage TEXT PRIMARY KEY, by TEXT NOT NULL, since INTEGER NOT NULL);"));
    }

    public Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("INSERT INTO paused (stage, by, since) VALUES ($stage, $by, $since) ON CONFLICT(stage) DO NOTHING",
            ("$stage", stage), ("$by", by), ("$since", Millis(at))), cancellationToken);

    public Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("DELETE FROM paused WHERE stage = $stage", ("$stage", stage)) > 0, cancellationToken);

    public Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT stage, by, since FROM paused ORDER BY stage", r => new PausedStage(r.GetString(0), r.GetString(1), r.Time(2)));
}
