using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>Runs as announced and the catalog of every file's copies, in SQLite: a run and its raw files are registered in one transaction.</summary>
public sealed class SqliteRunCatalog : IRunRegistry, ICatalog, ISqliteStore
{
    private const string CatalogColumns = "name, area, kind, campaign, dataset, size, adler32, events, sources, created_at, manifest, bad";

    private readonly SqliteDatabase _database;

    public SqliteRunCatalog(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session =>
        {
            session.Run("""
                CREATE TABLE IF NOT EXISTS runs (
                    run INTEGER PRIMARY KEY,
                    digest TEXT NOT NULL,
                    files INTEGER NOT NULL,
                    registered_at INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS catalog (
                    name TEXT NOT NULL,
                    area TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    campaign TEXT NULL,
                    dataset TEXT NULL,
                    size INTEGER NOT NULL,
                    adler32 TEXT NOT NULL,
                    events INTEGER NOT NULL,
                    sources TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY (name, area));
                CREATE INDEX IF NOT EXISTS ix_catalog_kind ON catalog(kind, campaign, dataset);
                """);
            // Databases made before runs kept their announcements, or merged files carried manifests, get the columns.
            session.AddColumnIfMissing("runs", "announcement", "TEXT NULL");
            session.AddColumnIfMissing("catalog", "manifest", "TEXT NULL");
            session.AddColumnIfMissing("catalog", "bad", "TEXT NULL");
        });
    }

    public Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            if (session.Scalar("SELECT digest FROM runs WHERE run = $run", ("$run", run)) is string known)
            {
                return known == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
            }
            foreach (var entry in rawFiles)
            {
                if (!AddCatalogEntry(session, entry))
                {
                    // A raw file of this run is already catalogued under another run's announcement: refuse the whole run.
                    throw new RefusedWrite(RunRegistration.Conflicting);
                }
            }
            session.Run("INSERT INTO runs (run, digest, files, registered_at, announcement) VALUES ($run, $digest, $files, $at, $announcement)",
                ("$run", run), ("$digest", digest), ("$files", rawFiles.Count), ("$at", Millis(DateTimeOffset.UtcNow)),
                ("$announcement", announcement is null ? null : JsonSerializer.Serialize(announcement, SqliteDatabase.Json)));
            return RunRegistration.New;
        }, cancellationToken);

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT run, files, registered_at FROM runs ORDER BY run", r => new RunRecord(r.GetInt32(0), r.GetInt32(1), r.Time(2)));

    public Task<IReadOnlyList<RunRecorded>> ListAnnouncementsAsync(int afterRun, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT announcement FROM runs WHERE run > $after AND announcement IS NOT NULL ORDER BY run LIMIT $limit",
            r => JsonSerializer.Deserialize<RunRecorded>(r.GetString(0), SqliteDatabase.Json)!,
            ("$after", afterRun), ("$limit", Math.Clamp(limit, 1, 10_000)));

    public Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            if (!AddCatalogEntry(session, entry))
            {
                throw new ConcurrencyConflictException($"Catalog already holds a different '{entry.Name}' in area '{entry.Area}'.");
            }
            return 0;
        }, cancellationToken);

    /// <summary>Inserts the entry; true if it was new or identical to the stored one.</summary>
    private static bool AddCatalogEntry(SqliteSession session, CatalogEntry entry)
    {
        var inserted = session.Run("""
            INSERT INTO catalog (name, area, kind, campaign, dataset, size, adler32, events, sources, created_at, manifest)
            VALUES ($name, $area, $kind, $campaign, $dataset, $size, $adler32, $events, $sources, $created, $manifest)
            ON CONFLICT(name, area) DO NOTHING
            """,
            ("$name", entry.Name), ("$area", entry.Area), ("$kind", entry.Kind), ("$campaign", entry.Campaign),
            ("$dataset", entry.Dataset), ("$size", entry.Size), ("$adler32", entry.Adler32), ("$events", entry.Events),
            ("$sources", JsonSerializer.Serialize(entry.Sources, SqliteDatabase.Json)), ("$created", Millis(entry.CreatedAt)), ("$manifest", entry.Manifest));
        return inserted == 1
            || session.Rows("SELECT size, adler32, kind FROM catalog WHERE name = $name AND area = $area",
                    r => r.GetInt64(0) == entry.Size && r.GetString(1) == entry.Adler32 && r.GetString(2) == entry.Kind,
                    ("$name", entry.Name), ("$area", entry.Area))
                .SingleOrDefault();
    }

    public Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {CatalogColumns} FROM catalog WHERE name = $name ORDER BY area", ReadEntry, ("$name", name));

    public Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {CatalogColumns} FROM catalog WHERE kind = $kind AND ($campaign IS NULL OR campaign = $campaign) ORDER BY dataset, name",
            ReadEntry, ("$kind", kind), ("$campaign", campaign));

    private static CatalogEntry ReadEntry(Microsoft.Data.Sqlite.SqliteDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        r.GetString(2),
        r.StringOrNull(3),
        r.StringOrNull(4),
        r.GetInt64(5),
        r.GetString(6),
        r.GetInt64(7),
        JsonSerializer.Deserialize<List<MergedSource>>(r.GetString(8), SqliteDatabase.Json) ?? [],
        r.Time(9),
        r.StringOrNull(10),
        r.StringOrNull(11));

    public Task<bool> MarkBadAsync(string name, string area, string? reason, SingletonFence? fence, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            SqliteSingletonLeaseStore.Require(session, fence);
            return session.Run("UPDATE catalog SET bad = $bad WHERE name = $name AND area = $area", ("$bad", reason), ("$name", name), ("$area", area)) == 1;
        }, cancellationToken);
}
