namespace Pipeline.Production.State;

/// <summary>Campaigns' run-time histograms in PostgreSQL: one row per campaign and bucket, added to in place.</summary>
public sealed class PostgresRunTimeStore : IRunTimeStore, IPostgresStore
{
    private readonly PostgresDatabase _database;

    public PostgresRunTimeStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("run_times", ["CREATE TABLE run_times (campaign TEXT NOT NULL, bucket INTEGER NOT NULL, files BIGINT NOT NULL, PRIMARY KEY (campaign, bucket));"]);
    }

    public Task AddAsync(string campaign, IReadOnlyDictionary<int, long> files, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            // In bucket order, so that two writers of one campaign lock its rows in the same order.
            foreach (var (bucket, count) in files.OrderBy(f => f.Key))
            {
                await session.RunAsync("""
                    INSERT INTO run_times (campaign, bucket, files) VALUES (@campaign, @bucket, @files)
                    ON CONFLICT (campaign, bucket) DO UPDATE SET files = run_times.files + excluded.files
                    """, ("campaign", campaign), ("bucket", bucket), ("files", count));
            }
            return 0;
        }, cancellationToken);

    public async Task<RunTimeHistogram> GetAsync(string campaign, CancellationToken cancellationToken)
    {
        var rows = await _database.RowsAsync("SELECT bucket, files FROM run_times WHERE campaign = @campaign",
            r => (Bucket: r.GetInt32(0), Files: r.Long(1)), cancellationToken, ("campaign", campaign));
        return new RunTimeHistogram(rows.ToDictionary(r => r.Bucket, r => r.Files));
    }
}
