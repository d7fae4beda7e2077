using System.Text.Json;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>Campaigns (their definitions as JSON, guarded by a version) and calibrations, in PostgreSQL.</summary>
public sealed class PostgresCampaignStore : ICampaignStore, IPostgresStore
{
    private readonly PostgresDatabase _database;

    public PostgresCampaignStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("campaigns",
        [
            """
            CREATE TABLE campaigns (
                name TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                digest TEXT NOT NULL,
                document JSONB NOT NULL);
            CREATE TABLE calibrations (
                tag TEXT NOT NULL,
                run_from INTEGER NOT NULL,
                run_to INTEGER NOT NULL,
                by TEXT NOT NULL,
                at BIGINT NOT NULL,
                PRIMARY KEY (tag, run_from, run_to));
            """,
        ]);
    }

    public Task<CampaignCreation> CreateCampaignAsync(CampaignRecord campaign, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            if (await session.RunAsync("""
                    INSERT INTO campaigns (name, version, digest, document) VALUES (@name, @version, @digest, @document::jsonb)
                    ON CONFLICT (name) DO NOTHING
                    """,
                    ("name", campaign.Name), ("version", campaign.Version), ("digest", campaign.Digest), ("document", JsonSerializer.Serialize(campaign, SqliteDatabase.Json))) == 1)
            {
                return CampaignCreation.Created;
            }
            var digest = (string?)await session.ScalarAsync("SELECT digest FROM campaigns WHERE name = @name", ("name", campaign.Name));
            return digest == campaign.Digest ? CampaignCreation.AlreadyExists : CampaignCreation.Conflicting;
        }, cancellationToken);

    public Task<CampaignRecord?> GetCampaignAsync(string name, CancellationToken cancellationToken) =>
        _database.ReadAsync(async session => await session.ScalarAsync("SELECT document::text FROM campaigns WHERE name = @name", ("name", name)) is string document
            ? JsonSerializer.Deserialize<CampaignRecord>(document, SqliteDatabase.Json)
            : null, cancellationToken);

    public Task<IReadOnlyList<CampaignRecord>> ListCampaignsAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT document::text FROM campaigns ORDER BY name", r => JsonSerializer.Deserialize<CampaignRecord>(r.GetString(0), SqliteDatabase.Json)!, cancellationToken);

    public Task<bool> ReplaceCampaignAsync(CampaignRecord campaign, int expectedVersion, SingletonFence? fence, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            await PostgresSingletonLeaseStore.RequireAsync(session, fence);
            var stored = campaign with { Version = expectedVersion + 1 };
            return await session.RunAsync("UPDATE campaigns SET version = @version, document = @document::jsonb WHERE name = @name AND version = @expected",
                ("name", campaign.Name), ("version", stored.Version), ("expected", expectedVersion), ("document", JsonSerializer.Serialize(stored, SqliteDatabase.Json))) == 1;
        }, cancellationToken);

    public Task<bool> AddCalibrationAsync(CalibrationRecord calibration, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session => await session.RunAsync("""
                INSERT INTO calibrations (tag, run_from, run_to, by, at) VALUES (@tag, @from, @to, @by, @at)
                ON CONFLICT (tag, run_from, run_to) DO NOTHING
                """,
                ("tag", calibration.Tag), ("from", calibration.RunFrom), ("to", calibration.RunTo), ("by", calibration.RegisteredBy),
                ("at", Millis(calibration.RegisteredAt))) == 1,
            cancellationToken);

    public Task<IReadOnlyList<CalibrationRecord>> ListCalibrationsAsync(string? tag, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT tag, run_from, run_to, by, at FROM calibrations WHERE @tag::text IS NULL OR tag = @tag::text ORDER BY tag, run_from, run_to",
            r => new CalibrationRecord(r.GetString(0), r.GetInt32(1), r.GetInt32(2), r.GetString(3), r.Time(4)), cancellationToken, ("tag", tag));
}
