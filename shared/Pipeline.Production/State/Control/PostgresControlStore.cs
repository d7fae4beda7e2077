using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>What operators have paused, in PostgreSQL.</summary>
public sealed class PostgresControlStore : IControlStore, IPostgresStore
{
    private readonly PostgresDatabase _database;

    public PostgresControlStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("control", ["CREATE TABLE paused (stage TEXT PRIMARY KEY, by TEXT NOT NULL, since BIGINT NOT NULL);"]);
    }

    public Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.RunAsync("INSERT INTO paused (stage, by, since) VALUES (@stage, @by, @since) ON CONFLICT (stage) DO NOTHING",
            ("stage", stage), ("by", by), ("since", Millis(at))), cancellationToken);

    public Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session => await session.RunAsync("DELETE FROM paused WHERE stage = @stage", ("stage", stage)) > 0, cancellationToken);

    public Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT stage, by, since FROM paused ORDER BY stage", r => new PausedStage(r.GetString(0), r.GetString(1), r.Time(2)), cancellationToken);
}
