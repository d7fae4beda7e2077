namespace Pipeline.Production.State;

/// <summary>Campaigns' run-time histograms in SQLite: one row per campaign and bucket, added to in place.</summary>
public sealed class SqliteRunTimeStore : IRunTimeStore, ISqliteStore
{
    private readonly SqliteDatabase _database;

    public SqliteRunTimeStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run(
            "CREATE TABLE IF NOT EXISTS run_times (campaign TEXT NOT NULL, bucket INTEGER NOT NULL, files INTEGER NOT NULL, PRIMARY KEY (campaign, bucket));"));
    }

    public Task AddAsync(string campaign, IReadOnlyDictionary<int, long> files, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            foreach (var (bucket, count) in files)
            {
                session.Run("INSERT INTO run_times (campaign, bucket, files) VALUES ($campaign, $bucket, $files) ON CONFLICT(campaign, bucket) DO UPDATE SET files = files + excluded.files",
                    ("$campaign", campaign), ("$bucket", bucket), ("$files", count));
            }
            return 0;
        }, cancellationToken);

    public async Task<RunTimeHistogram> GetAsync(string campaign, CancellationToken cancellationToken)
    {
        var rows = await _database.RowsAsync("SELECT bucket, files FROM run_times WHERE campaign = $campaign", r => (Bucket: r.GetInt32(0), Files: r.GetInt64(1)), ("$campaign", campaign));
        return new RunTimeHistogram(rows.ToDictionary(r => r.Bucket, r => r.Files));
    }
}
