using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>
/// Files and bytes each stage finished for each campaign per minute and per hour, in PostgreSQL. Each write drops its
/// resolution's buckets that fell out of the window: a range at the start of the primary key, nearly free when empty.
/// </summary>
public sealed class PostgresActivityLog : IActivityLog, IPostgresStore
{
    private static readonly ThroughputResolution[] Resolutions = [ThroughputResolution.Minute, ThroughputResolution.Hour];

    private readonly PostgresDatabase _database;

    public PostgresActivityLog(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("activity",
        [
            """
            CREATE TABLE throughput (
                resolution INTEGER NOT NULL,
                bucket BIGINT NOT NULL,
                stage TEXT NOT NULL,
                campaign TEXT NOT NULL,
                files BIGINT NOT NULL,
                bytes BIGINT NOT NULL,
                PRIMARY KEY (resolution, bucket, stage, campaign));
            """,
        ]);
    }

    public Task RecordAsync(string stage, string campaign, DateTimeOffset at, long bytes, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            foreach (var resolution in Resolutions)
            {
                (string, object?)[] parameters = [("resolution", (int)resolution), ("bucket", Millis(ThroughputWindow.BucketOf(resolution, at))), ("stage", stage),
                    ("campaign", campaign), ("bytes", bytes), ("oldest", Millis(ThroughputWindow.OldestKept(resolution, at)))];
                await session.RunAsync("""
                    INSERT INTO throughput (resolution, bucket, stage, campaign, files, bytes) VALUES (@resolution, @bucket, @stage, @campaign, 1, @bytes)
                    ON CONFLICT (resolution, bucket, stage, campaign) DO UPDATE SET files = throughput.files + 1, bytes = throughput.bytes + excluded.bytes
                    """, parameters);
                await session.RunAsync("DELETE FROM throughput WHERE resolution = @resolution AND bucket < @oldest", parameters);
            }
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<StageActivity>> ListActivityAsync(ThroughputResolution resolution, DateTimeOffset since, CancellationToken cancellationToken) =>
        _database.RowsAsync("""
            SELECT stage, campaign, bucket, files, bytes FROM throughput
            WHERE resolution = @resolution AND bucket >= @since ORDER BY bucket, stage, campaign
            """,
            r => new StageActivity(r.GetString(0), r.GetString(1), r.Time(2), r.Long(3), r.Long(4)),
            cancellationToken,
            ("resolution", (int)resolution), ("since", Millis(ThroughputWindow.BucketOf(resolution, since))));
}
