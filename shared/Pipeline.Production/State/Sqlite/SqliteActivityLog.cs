using static Pipeline.Production.State.Sqlite.SqliteValues;

namespace Pipeline.Production.State.Sqlite;

/// <summary>Files and bytes each stage finished per hour, in SQLite.</summary>
public sealed class SqliteActivityLog : IActivityLog
{
    private readonly SqliteDatabase _database;

    public SqliteActivityLog(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
            CREATE TABLE IF NOT EXISTS activity (
                hour INTEGER NOT NULL,
                stage TEXT NOT NULL,
                files INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                PRIMARY KEY (hour, stage));
            """));
    }

    public Task RecordAsync(string stage, DateTimeOffset at, long bytes, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("""
                INSERT INTO activity (hour, stage, files, bytes) VALUES ($hour, $stage, 1, $bytes)
                ON CONFLICT(hour, stage) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes
                """, ("$hour", Millis(StageActivity.HourOf(at))), ("$stage", stage), ("$bytes", bytes)),
            cancellationToken);

    public Task<IReadOnlyList<StageActivity>> ListActivityAsync(DateTimeOffset since, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT stage, hour, files, bytes FROM activity WHERE hour >= $since ORDER BY hour, stage",
            r => new StageActivity(r.GetString(0), r.Time(1), r.GetInt64(2), r.GetInt64(3)), ("$since", Millis(StageActivity.HourOf(since))));
}
