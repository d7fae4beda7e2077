using System.Text.Json;
using Npgsql;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>Runs as announced and the catalog of every file's copies, in PostgreSQL: a run and its raw files are registered in one transaction.</summary>
public sealed class PostgresRunCatalog : IRunRegistry, ICatalog, IPostgresStore
{
    private const string CatalogColumns = "name, area, kind, campaign, dataset, size, adler32, events, sources::text, created_at, manifest, bad";

    private readonly PostgresDatabase _database;

    public PostgresRunCatalog(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("runs",
        [
            """
            CREATE TABLE runs (
                run INTEGER PRIMARY KEY,
                digest TEXT NOT NULL,
                files INTEGER NOT NULL,
                registered_at BIGINT NOT NULL,
                announcement JSONB NULL);
            CREATE TABLE catalog (
                name TEXT NOT NULL,
                area TEXT NOT NULL,
                kind TEXT NOT NULL,
                campaign TEXT NULL,
                dataset TEXT NULL,
                size BIGINT NOT NULL,
                adler32 TEXT NOT NULL,
                events BIGINT NOT NULL,
                sources JSONB NOT NULL,
                created_at BIGINT NOT NULL,
                manifest TEXT NULL,
                bad TEXT NULL,
                PRIMARY KEY (name, area));
            -- A kind's files in (dataset, name) order, of every campaign or of one.
            CREATE INDEX ix_catalog_kind ON catalog(kind, dataset, name);
            CREATE INDEX ix_catalog_kind_campaign ON catalog(kind, campaign, dataset, name);
            """,
        ]);
    }

    public Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            if (await session.ScalarAsync("SELECT digest FROM runs WHERE run = @run", ("run", run)) is string known)
            {
                return known == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
            }
            foreach (var entry in rawFiles)
            {
                if (!await AddCatalogEntryAsync(session, entry))
                {
                    // A raw file of this run is already catalogued under another run's announcement: refuse the whole run.
                    throw new RefusedWrite(RunRegistration.Conflicting);
                }
            }
            // Two registering the run at once: the second's insert breaks the key, and its write runs again to find the run.
            await session.RunAsync("INSERT INTO runs (run, digest, files, registered_at, announcement) VALUES (@run, @digest, @files, @at, @announcement::jsonb)",
                ("run", run), ("digest", digest), ("files", rawFiles.Count), ("at", Millis(DateTimeOffset.UtcNow)),
                ("announcement", announcement is null ? null : JsonSerializer.Serialize(announcement, SqliteDatabase.Json)));
            return RunRegistration.New;
        }, cancellationToken);

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT run, files, registered_at FROM runs ORDER BY run", r => new RunRecord(r.GetInt32(0), r.GetInt32(1), r.Time(2)), cancellationToken);

    public Task<IReadOnlyList<RunRecorded>> ListAnnouncementsAsync(int afterRun, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT announcement::text FROM runs WHERE run > @after AND announcement IS NOT NULL ORDER BY run LIMIT @limit",
            r => JsonSerializer.Deserialize<RunRecorded>(r.GetString(0), SqliteDatabase.Json)!,
            cancellationToken, ("after", afterRun), ("limit", Math.Clamp(limit, 1, 10_000)));

    public Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            if (!await AddCatalogEntryAsync(session, entry))
            {
                throw new ConcurrencyConflictException($"Catalog already holds a different '{entry.Name}' in area '{entry.Area}'.");
            }
            return 0;
        }, cancellationToken);

    /// <summary>Inserts the entry; true if it was new or identical to the stored one.</summary>
    private static async Task<bool> AddCatalogEntryAsync(PostgresSession session, CatalogEntry entry)
    {
        var inserted = await session.RunAsync("""
            INSERT INTO catalog (name, area, kind, campaign, dataset, size, adler32, events, sources, created_at, manifest)
            VALUES (@name, @area, @kind, @campaign, @dataset, @size, @adler32, @events, @sources::jsonb, @created, @manifest)
            ON CONFLICT (name, area) DO NOTHING
            """,
            ("name", entry.Name), ("area", entry.Area), ("kind", entry.Kind), ("campaign", entry.Campaign),
            ("dataset", entry.Dataset), ("size", entry.Size), ("adler32", entry.Adler32), ("events", entry.Events),
            ("sources", JsonSerializer.Serialize(entry.Sources, SqliteDatabase.Json)), ("created", Millis(entry.CreatedAt)), ("manifest", entry.Manifest));
        return inserted == 1
            || (await session.RowsAsync("SELECT size, adler32, kind FROM catalog WHERE name = @name AND area = @area",
                    r => r.GetInt64(0) == entry.Size && r.GetString(1) == entry.Adler32 && r.GetString(2) == entry.Kind,
                    ("name", entry.Name), ("area", entry.Area)))
                .SingleOrDefault();
    }

    public Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken) =>
        _database.RowsAsync($"SELECT {CatalogColumns} FROM catalog WHERE name = @name ORDER BY area", ReadEntry, cancellationToken, ("name", name));

    public Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken) =>
        _database.RowsAsync(OfKind(kind, campaign), ReadEntry, cancellationToken);

    /// <summary>A kind's files (of one campaign, or of all) in (dataset, name) order.</summary>
    public static PostgresQuery OfKind(string kind, string? campaign) => campaign is null
        ? new($"SELECT {CatalogColumns} FROM catalog WHERE kind = @kind ORDER BY dataset, name", ("kind", kind))
        : new($"SELECT {CatalogColumns} FROM catalog WHERE kind = @kind AND campaign = @campaign ORDER BY dataset, name", ("kind", kind), ("campaign", campaign));

    private static CatalogEntry ReadEntry(NpgsqlDataReader r) => new(
        r.GetString(0),
        r.GetString(1),
        r.GetString(2),
        r.StringOrNull(3),
        r.StringOrNull(4),
        r.Long(5),
        r.GetString(6),
        r.Long(7),
        JsonSerializer.Deserialize<List<MergedSource>>(r.GetString(8), SqliteDatabase.Json) ?? [],
        r.Time(9),
        r.StringOrNull(10),
        r.StringOrNull(11));

    public Task<bool> MarkBadAsync(string name, string area, string? reason, SingletonFence? fence, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            await PostgresSingletonLeaseStore.RequireAsync(session, fence);
            return await session.RunAsync("UPDATE catalog SET bad = @bad WHERE name = @name AND area = @area", ("bad", reason), ("name", name), ("area", area)) == 1;
        }, cancellationToken);
}
