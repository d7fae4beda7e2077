using System.Text.Json;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>Campaigns (their definitions as JSON, guarded by a version) and calibrations, in SQLite.</summary>
public sealed class SqliteCampaignStore : ICampaignStore, ISqliteStore
{
    private readonly SqliteDatabase _database;

    public SqliteCampaignStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
            CREATE TABLE IF NOT EXISTS campaigns (
                name TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                digest TEXT NOT NULL,
                document TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS calibrations (
                tag TEXT NOT NULL,
                run_from INTEGER NOT NULL,
                run_to INTEGER NOT NULL,
                by TEXT NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (tag, run_from, run_to));
            """));
    }

    public Task<CampaignCreation> CreateCampaignAsync(CampaignRecord campaign, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            if (session.Scalar("SELECT digest FROM campaigns WHERE name = $name", ("$name", campaign.Name)) is string digest)
            {
                return digest == campaign.Digest ? CampaignCreation.AlreadyExists : CampaignCreation.Conflicting;
            }
            session.Run("INSERT INTO campaigns (name, version, digest, document) VALUES ($name, $version, $digest, $document)",
                ("$name", campaign.Name), ("$version", campaign.Version), ("$digest", campaign.Digest), ("$document", JsonSerializer.Serialize(campaign, SqliteDatabase.Json)));
            return CampaignCreation.Created;
        }, cancellationToken);

    public Task<CampaignRecord?> GetCampaignAsync(string name, CancellationToken cancellationToken) =>
        _database.ReadAsync(session => session.Scalar("SELECT document FROM campaigns WHERE name = $name", ("$name", name)) is string document
            ? JsonSerializer.Deserialize<CampaignRecord>(document, SqliteDatabase.Json)
            : null);

    public Task<IReadOnlyList<CampaignRecord>> ListCampaignsAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT document FROM campaigns ORDER BY name", r => JsonSerializer.Deserialize<CampaignRecord>(r.GetString(0), SqliteDatabase.Json)!);

    public Task<bool> ReplaceCampaignAsync(CampaignRecord campaign, int expectedVersion, SingletonFence? fence, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            SqliteSingletonLeaseStore.Require(session, fence);
            var stored = campaign with { Version = expectedVersion + 1 };
            return session.Run("UPDATE campaigns SET version = $version, document = $document WHERE name = $name AND version = $expected",
                ("$name", campaign.Name), ("$version", stored.Version), ("$expected", expectedVersion), ("$document", JsonSerializer.Serialize(stored, SqliteDatabase.Json))) == 1;
        }, cancellationToken);

    public Task<bool> AddCalibrationAsync(CalibrationRecord calibration, CancellationToken cancellationToken) =>
        _database.WriteAsync(session => session.Run("""
                INSERT INTO calibrations (tag, run_from, run_to, by, at) VALUES ($tag, $from, $to, $by, $at)
                ON CONFLICT (tag, run_from, run_to) DO NOTHING
                """,
                ("$tag", calibration.Tag), ("$from", calibration.RunFrom), ("$to", calibration.RunTo), ("$by", calibration.RegisteredBy),
                ("$at", Millis(calibration.RegisteredAt))) == 1,
            cancellationToken);

    public Task<IReadOnlyList<CalibrationRecord>> ListCalibrationsAsync(string? tag, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT tag, run_from, run_to, by, at FROM calibrations WHERE $tag IS NULL OR tag = $tag ORDER BY tag, run_from, run_to",
            r => new CalibrationRecord(r.GetString(0), r.GetInt32(1), r.GetInt32(2), r.GetString(3), r.Time(4)), ("$tag", tag));
}
