using System.Text.Json;
using Microsoft.Data.Sqlite;
using Pipeline.Contracts;

namespace Pipeline.Infrastructure.State;

public sealed partial class SqlitePipelineStore
{
    private static void InitialiseCampaigns(SqliteConnection connection)
    {
        Execute(connection, """
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
            """);
        // Databases made before runs kept their announcements get the column; their old runs have none.
        using var columns = Command(connection, "SELECT COUNT(*) FROM pragma_table_info('runs') WHERE name = 'announcement'");
        if (Convert.ToInt64(columns.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            Execute(connection, "ALTER TABLE runs ADD COLUMN announcement TEXT NULL");
        }
    }

    public Task<IReadOnlyList<RunRecorded>> ListAnnouncementsAsync(int afterRun, int limit, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<RunRecorded>>(connection =>
        {
            using var command = Command(connection, "SELECT announcement FROM runs WHERE run > $after AND announcement IS NOT NULL ORDER BY run LIMIT $limit",
                ("$after", afterRun), ("$limit", Math.Clamp(limit, 1, 10_000)));
            using var reader = command.ExecuteReader();
            var runs = new List<RunRecorded>();
            while (reader.Read())
            {
                runs.Add(JsonSerializer.Deserialize<RunRecorded>(reader.GetString(0), Json)!);
            }
            return runs;
        });

    public Task<CampaignCreation> CreateCampaignAsync(CampaignRecord campaign, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using (var existing = Command(connection, "SELECT digest FROM campaigns WHERE name = $name", ("$name", campaign.Name)))
            {
                existing.Transaction = transaction;
                if (existing.ExecuteScalar() is string digest)
                {
                    return digest == campaign.Digest ? CampaignCreation.AlreadyExists : CampaignCreation.Conflicting;
                }
            }
            using var insert = Command(connection, "INSERT INTO campaigns (name, version, digest, document) VALUES ($name, $version, $digest, $document)",
                ("$name", campaign.Name), ("$version", campaign.Version), ("$digest", campaign.Digest), ("$document", JsonSerializer.Serialize(campaign, Json)));
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
            return CampaignCreation.Created;
        }, cancellationToken);

    public Task<CampaignRecord?> GetCampaignAsync(string name, CancellationToken cancellationToken) =>
        ReadAsync(connection =>
        {
            using var command = Command(connection, "SELECT document FROM campaigns WHERE name = $name", ("$name", name));
            return command.ExecuteScalar() is string document ? JsonSerializer.Deserialize<CampaignRecord>(document, Json) : null;
        });

    public Task<IReadOnlyList<CampaignRecord>> ListCampaignsAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<CampaignRecord>>(connection =>
        {
            using var command = Command(connection, "SELECT document FROM campaigns ORDER BY name");
            using var reader = command.ExecuteReader();
            var campaigns = new List<CampaignRecord>();
            while (reader.Read())
            {
                campaigns.Add(JsonSerializer.Deserialize<CampaignRecord>(reader.GetString(0), Json)!);
            }
            return campaigns;
        });

    public Task<bool> ReplaceCampaignAsync(CampaignRecord campaign, int expectedVersion, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            var stored = campaign with { Version = expectedVersion + 1 };
            using var command = Command(connection, "UPDATE campaigns SET version = $version, document = $document WHERE name = $name AND version = $expected",
                ("$name", campaign.Name), ("$version", stored.Version), ("$expected", expectedVersion), ("$document", JsonSerializer.Serialize(stored, Json)));
            command.Transaction = transaction;
            return command.ExecuteNonQuery() == 1;
        }, cancellationToken);

    public Task<bool> AddCalibrationAsync(CalibrationRecord calibration, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, """
                INSERT INTO calibrations (tag, run_from, run_to, by, at) VALUES ($tag, $from, $to, $by, $at)
                ON CONFLICT (tag, run_from, run_to) DO NOTHING
                """,
                ("$tag", calibration.Tag), ("$from", calibration.RunFrom), ("$to", calibration.RunTo), ("$by", calibration.RegisteredBy),
                ("$at", calibration.RegisteredAt.ToUnixTimeMilliseconds()));
            command.Transaction = transaction;
            return command.ExecuteNonQuery() == 1;
        }, cancellationToken);

    public Task<IReadOnlyList<CalibrationRecord>> ListCalibrationsAsync(string? tag, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<CalibrationRecord>>(connection =>
        {
            using var command = Command(connection, "SELECT tag, run_from, run_to, by, at FROM calibrations WHERE $tag IS NULL OR tag = $tag ORDER BY tag, run_from, run_to",
                ("$tag", tag));
            using var reader = command.ExecuteReader();
            var calibrations = new List<CalibrationRecord>();
            while (reader.Read())
            {
                calibrations.Add(new CalibrationRecord(reader.GetString(0), reader.GetInt32(1), reader.GetInt32(2), reader.GetString(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4))));
            }
            return calibrations;
        });
}
