using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>
/// Files and bytes each stage finished for each campaign per minute and per hour, in SQLite. Each write drops its
/// resolution's buckets that fell out of the window: a range at the start of the primary key, nearly free when empty.
/// </summary>
public sealed class SqliteActivityLog : IActivityLog, ISqliteStore
{
    private static readonly ThroughputResolution[] Resolutions = [ThroughputResolution.Minute, ThroughputResolution.Hour];

    private readonly SqliteDatabase _database;

    public SqliteActivityLog(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session =>
        {
            session.Run("""
                CREATE TABLE IF NOT EXISTS throughput (
                    resolution INTEGER NOT NULL,
                    bucket INTEGER NOT NULL,
                    stage TEXT NOT NULL,
                    campaign TEXT NOT NULL,
                    files INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    PRIMARY KEY (resolution, bucket, stage, campaign));
                """);
            // The hourly log of earlier versions had no campaign: its hours are kept, under no campaign's name.
            if (session.Scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'activity'") is not null)
            {
                session.Run("""
                    INSERT OR IGNORE INTO throughput (resolution, bucket, stage, campaign, files, bytes)
                        SELECT $hour, hour, stage, '', files, bytes FROM activity;
                    DROP TABLE activity;
                    """, ("$hour", (int)ThroughputResolution.Hour));
            }
        });
    }

    public Task RecordAsync(string stage, string campaign, DateTimeOffset at, long bytes, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            foreach (var resolution in Resolutions)
            {
                session.Run("""
                    INSERT INTO throughput (resolution, bucket, stage, campaign, files, bytes) VALUES ($resolution, $bucket, $stage, $campaign, 1, $bytes)
                    ON CONFLICT(resolution, bucket, stage, campaign) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
                    DELETE FROM throughput WHERE resolution = $resolution AND bucket < $oldest;
                    """,
                    ("$resolution", (int)resolution), ("$bucket", Millis(ThroughputWindow.BucketOf(resolution, at))), ("$stage", stage),
                    ("$campaign", campaign), ("$bytes", bytes), ("$oldest", Millis(ThroughputWindow.OldestKept(resolution, at))));
            }
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<StageActivity>> ListActivityAsync(ThroughputResolution resolution, DateTimeOffset since, CancellationToken cancellationToken) =>
        _database.RowsAsync("""
            SELECT stage, campaign, bucket, files, bytes FROM throughput
            WHERE resolution = $resolution AND bucket >= $since ORDER BY bucket, stage, campaign
            """,
            r => new StageActivity(r.GetString(0), r.GetString(1), r.Time(2), r.GetInt64(3), r.GetInt64(4)),
            ("$resolution", (int)resolution), ("$since", Millis(ThroughputWindow.BucketOf(resolution, since))));
}
