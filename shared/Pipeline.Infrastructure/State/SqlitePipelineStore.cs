using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Data.Sqlite;
using Pipeline.Contracts;

namespace Pipeline.Infrastructure.State;

/// <summary>
/// The embedded store: one SQLite database in WAL mode. Sagas are JSON documents with the columns
/// the queries filter on beside them; every update is a compare-and-set on the version column.
/// </summary>
public enum SqliteDurability
{
    Full,
    Normal,
}

public sealed partial class SqlitePipelineStore : IPipelineStore, IDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    // SQLite admits one writer at a time. Writes queue here and one writer applies whatever has queued up
    // in a single transaction (group commit): one disk flush serves many writes, each still all-or-nothing.
    private readonly Channel<WriteRequest> _writes = Channel.CreateUnbounded<WriteRequest>(new UnboundedChannelOptions { SingleReader = true });
    private const int MaxWritesPerCommit = 256;
    private readonly string _connectionString;
    private readonly string _pragmas;

    /// <param name="databasePath">The database file; created with its tables if missing.</param>
    /// <param name="durability">
    /// Full: every commit reaches the disk before it returns (survives a power cut).
    /// Normal: commits reach the operating system; a process crash loses nothing, a power cut may lose the last ones.
    /// </param>
    public SqlitePipelineStore(string databasePath, SqliteDurability durability = SqliteDurability.Full)
    {
        _pragmas = $"PRAGMA synchronous={(durability == SqliteDurability.Full ? "FULL" : "NORMAL")}; PRAGMA foreign_keys=ON;";
        var directory = Path.GetDirectoryName(Path.GetFullPath(databasePath));
        if (directory is not null)
        {
            Directory.CreateDirectory(directory);
        }
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            DefaultTimeout = 30,
            Pooling = true,
        }.ToString();
        Initialise();
        _ = Task.Run(ApplyWritesAsync);
    }

    private void Initialise()
    {
        using var connection = Open();
        Execute(connection, "PRAGMA journal_mode=WAL;");
        Execute(connection, """
            CREATE TABLE IF NOT EXISTS file_sagas (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                state TEXT NOT NULL,
                campaign TEXT NOT NULL,
                run INTEGER NOT NULL,
                stream TEXT NOT NULL,
                name TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                deadline INTEGER NULL,
                failure TEXT NULL,
                document TEXT NOT NULL);
            -- Listing pages in (run, name) order: one index per filter combination the API offers, ending in (run, name).
            CREATE INDEX IF NOT EXISTS ix_file_sagas_run ON file_sagas(run, name);
            CREATE INDEX IF NOT EXISTS ix_file_sagas_state_run ON file_sagas(state, run, name);
            CREATE INDEX IF NOT EXISTS ix_file_sagas_campaign_state_run ON file_sagas(campaign, state, run, name);
            CREATE INDEX IF NOT EXISTS ix_file_sagas_campaign_stream_run ON file_sagas(campaign, stream, run, name);
            -- The watchdog's sweep and the in-memory restart recovery.
            CREATE INDEX IF NOT EXISTS ix_file_sagas_deadline ON file_sagas(deadline) WHERE deadline IS NOT NULL;
            CREATE INDEX IF NOT EXISTS ix_file_sagas_updated ON file_sagas(updated_at);
            -- Files per campaign and state, kept by triggers in the same transaction as each change,
            -- so the summary reads a handful of rows instead of counting millions.
            CREATE TABLE IF NOT EXISTS state_counts (
                campaign TEXT NOT NULL,
                state TEXT NOT NULL,
                files INTEGER NOT NULL,
                PRIMARY KEY (campaign, state));
            CREATE TRIGGER IF NOT EXISTS tr_file_sagas_counted AFTER INSERT ON file_sagas BEGIN
                INSERT OR IGNORE INTO state_counts (campaign, state, files) VALUES (new.campaign, new.state, 0);
                UPDATE state_counts SET files = files + 1 WHERE campaign = new.campaign AND state = new.state;
            END;
            CREATE TRIGGER IF NOT EXISTS tr_file_sagas_recounted AFTER UPDATE OF state ON file_sagas WHEN old.state <> new.state BEGIN
                UPDATE state_counts SET files = files - 1 WHERE campaign = old.campaign AND state = old.state;
                INSERT OR IGNORE INTO state_counts (campaign, state, files) VALUES (new.campaign, new.state, 0);
                UPDATE state_counts SET files = files + 1 WHERE campaign = new.campaign AND state = new.state;
            END;
            INSERT INTO state_counts (campaign, state, files)
                SELECT campaign, state, COUNT(*) FROM file_sagas WHERE NOT EXISTS (SELECT 1 FROM state_counts) GROUP BY campaign, state;
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
            CREATE TABLE IF NOT EXISTS merge_outputs (
                output_id TEXT PRIMARY KEY,
                file_id TEXT NOT NULL,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                run INTEGER NOT NULL,
                stream TEXT NOT NULL,
                section INTEGER NOT NULL,
                raw_name TEXT NOT NULL,
                name TEXT NOT NULL,
                size INTEGER NOT NULL,
                adler32 TEXT NOT NULL,
                events INTEGER NOT NULL,
                added_at INTEGER NOT NULL,
                merged_name TEXT NULL);
            CREATE INDEX IF NOT EXISTS ix_merge_outputs_pending ON merge_outputs(campaign, dataset, merged_name, run, section);
            CREATE INDEX IF NOT EXISTS ix_merge_outputs_merged ON merge_outputs(merged_name);
            CREATE TABLE IF NOT EXISTS merged_files (
                name TEXT PRIMARY KEY,
                campaign TEXT NOT NULL,
                dataset TEXT NOT NULL,
                size INTEGER NOT NULL,
                adler32 TEXT NOT NULL,
                events INTEGER NOT NULL,
                archived INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS ix_merged_files_archived ON merged_files(archived, updated_at);
            CREATE TABLE IF NOT EXISTS instances (
                instance TEXT PRIMARY KEY,
                services TEXT NOT NULL,
                host TEXT NOT NULL,
                started_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL,
                load TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS alerts (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                key TEXT NOT NULL,
                kind TEXT NOT NULL,
                severity TEXT NOT NULL,
                message TEXT NOT NULL,
                raised_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL,
                resolved_at INTEGER NULL);
            -- At most one active alert per key.
            CREATE UNIQUE INDEX IF NOT EXISTS ix_alerts_active ON alerts(key) WHERE resolved_at IS NULL;
            CREATE INDEX IF NOT EXISTS ix_alerts_raised ON alerts(raised_at);
            CREATE TABLE IF NOT EXISTS paused (
                stage TEXT PRIMARY KEY,
                by TEXT NOT NULL,
                since INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS activity (
                hour INTEGER NOT NULL,
                stage TEXT NOT NULL,
                files INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                PRIMARY KEY (hour, stage));
            CREATE INDEX IF NOT EXISTS ix_merged_files_dataset ON merged_files(campaign, dataset, archived, created_at);
            -- Flow control: the bytes each bounded area holds, file by file, and the area's own totals.
            CREATE TABLE IF NOT EXISTS area_files (
                area TEXT NOT NULL,
                name TEXT NOT NULL,
                bytes INTEGER NOT NULL,
                at INTEGER NOT NULL,
                PRIMARY KEY (area, name));
            CREATE INDEX IF NOT EXISTS ix_area_files_at ON area_files(area, at);
            CREATE TABLE IF NOT EXISTS areas (
                area TEXT PRIMARY KEY,
                bytes INTEGER NOT NULL,
                files INTEGER NOT NULL,
                blocked INTEGER NOT NULL,
                peak_bytes INTEGER NOT NULL,
                largest_file_bytes INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS movers (
                dataset TEXT PRIMARY KEY,
                holder TEXT NOT NULL,
                since INTEGER NOT NULL,
                expires INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                by TEXT NOT NULL,
                at INTEGER NOT NULL);
            """);
        InitialiseCampaigns(connection);
        // Databases made before merged files carried manifests get the columns; their older files have none.
        AddColumnIfMissing(connection, "catalog", "manifest", "TEXT NULL");
        AddColumnIfMissing(connection, "catalog", "bad", "TEXT NULL");
        AddColumnIfMissing(connection, "merged_files", "manifest", "TEXT NULL");
    }

    private static void AddColumnIfMissing(SqliteConnection connection, string table, string column, string definition)
    {
        using var columns = Command(connection, $"SELECT COUNT(*) FROM pragma_table_info('{table}') WHERE name = $column", ("$column", column));
        if (Convert.ToInt64(columns.ExecuteScalar(), CultureInfo.InvariantCulture) == 0)
        {
            Execute(connection, $"ALTER TABLE {table} ADD COLUMN {column} {definition}");
        }
    }

    private SqliteConnection Open()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        Execute(connection, _pragmas);
        return connection;
    }

    private async Task<T> WriteAsync<T>(Func<SqliteConnection, SqliteTransaction, T> work, CancellationToken cancellationToken)
    {
        var request = new WriteRequest((connection, transaction) => work(connection, transaction));
        await _writes.Writer.WriteAsync(request, cancellationToken);
        return (T)(await request.Done.Task)!;
    }

    private async Task ApplyWritesAsync()
    {
        using var connection = Open();
        var batch = new List<WriteRequest>(MaxWritesPerCommit);
        while (await _writes.Reader.WaitToReadAsync())
        {
            batch.Clear();
            while (batch.Count < MaxWritesPerCommit && _writes.Reader.TryRead(out var request))
            {
                batch.Add(request);
            }
            var outcomes = new (object? Result, Exception? Error)[batch.Count];
            try
            {
                using var transaction = connection.BeginTransaction(deferred: false);
                for (var i = 0; i < batch.Count; i++)
                {
                    // Each write is all-or-nothing on its own: a refused or failed one is undone to its savepoint.
                    transaction.Save("write");
                    try
                    {
                        outcomes[i] = (batch[i].Work(connection, transaction), null);
                        transaction.Release("write");
                    }
                    catch (Exception ex)
                    {
                        transaction.Rollback("write");
                        transaction.Release("write");
                        outcomes[i] = ex is RefusedWrite refused ? (refused.Result, null) : (null, ex);
                    }
                }
                transaction.Commit();
            }
            catch (Exception ex)
            {
                // Nothing of this batch was committed.
                foreach (var request in batch)
                {
                    request.Done.TrySetException(ex);
                }
                continue;
            }
            for (var i = 0; i < batch.Count; i++)
            {
                if (outcomes[i].Error is { } error)
                {
                    batch[i].Done.TrySetException(error);
                }
                else
                {
                    batch[i].Done.TrySetResult(outcomes[i].Result);
                }
            }
        }
    }

    private sealed class WriteRequest(Func<SqliteConnection, SqliteTransaction, object?> work)
    {
        public Func<SqliteConnection, SqliteTransaction, object?> Work { get; } = work;

        public TaskCompletionSource<object?> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Thrown by a write that decides to change nothing; its own changes are undone and <see cref="Result"/> returned.</summary>
    private sealed class RefusedWrite(object? result) : Exception("write refused")
    {
        public object? Result { get; } = result;
    }

    public void Dispose() => _writes.Writer.TryComplete();

    private Task<T> ReadAsync<T>(Func<SqliteConnection, T> work)
    {
        using var connection = Open();
        return Task.FromResult(work(connection));
    }

    // ---- file sagas -------------------------------------------------------------------------

    public Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken) =>
        ReadAsync(connection =>
        {
            using var command = Command(connection, "SELECT document FROM file_sagas WHERE id = $id", ("$id", Key(id)));
            return command.ExecuteScalar() is string document ? JsonSerializer.Deserialize<FileState>(document, Json) : null;
        });

    public Task InsertAsync(FileState state, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, """
                INSERT INTO file_sagas (id, version, state, campaign, run, stream, name, attempt, updated_at, deadline, failure, document)
                VALUES ($id, $version, $state, $campaign, $run, $stream, $name, $attempt, $updated, $deadline, $failure, $document)
                ON CONFLICT(id) DO NOTHING
                """, SagaParameters(state));
            command.Transaction = transaction;
            if (command.ExecuteNonQuery() == 0)
            {
                throw new ConcurrencyConflictException($"File saga {state.CorrelationId} already exists.");
            }
            return 0;
        }, cancellationToken);

    public Task UpdateAsync(FileState state, int expectedVersion, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            state.Version = expectedVersion + 1;
            using var command = Command(connection, """
                UPDATE file_sagas SET version = $version, state = $state, attempt = $attempt, updated_at = $updated,
                    deadline = $deadline, failure = $failure, document = $document
                WHERE id = $id AND version = $expected
                """, [.. SagaParameters(state), ("$expected", expectedVersion)]);
            command.Transaction = transaction;
            if (command.ExecuteNonQuery() == 0)
            {
                state.Version = expectedVersion;
                throw new ConcurrencyConflictException($"File saga {state.CorrelationId} changed since version {expectedVersion} was read.");
            }
            return 0;
        }, cancellationToken);

    /// <summary>Here in one transaction: an existing id stores none of the batch.</summary>
    public Task BulkInsertAsync(IEnumerable<FileState> states, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, """
                INSERT INTO file_sagas (id, version, state, campaign, run, stream, name, attempt, updated_at, deadline, failure, document)
                VALUES ($id, $version, $state, $campaign, $run, $stream, $name, $attempt, $updated, $deadline, $failure, $document)
                ON CONFLICT(id) DO NOTHING
                """, SagaParameters(new FileState()));
            command.Transaction = transaction;
            command.Prepare();
            foreach (var state in states)
            {
                foreach (var (name, value) in SagaParameters(state))
                {
                    command.Parameters[name].Value = value ?? DBNull.Value;
                }
                if (command.ExecuteNonQuery() == 0)
                {
                    throw new ConcurrencyConflictException($"File saga {state.CorrelationId} already exists.");
                }
            }
            return 0;
        }, cancellationToken);

    private static (string, object?)[] SagaParameters(FileState state) =>
    [
        ("$id", Key(state.CorrelationId)),
        ("$version", state.Version),
        ("$state", state.CurrentState),
        ("$campaign", state.Campaign),
        ("$run", state.Run),
        ("$stream", state.Stream),
        ("$name", state.LogicalName),
        ("$attempt", state.Attempt),
        ("$updated", state.UpdatedAt.ToUnixTimeMilliseconds()),
        ("$deadline", state.Deadline?.ToUnixTimeMilliseconds()),
        ("$failure", state.FailureReason),
        ("$document", JsonSerializer.Serialize(state, Json)),
    ];

    public Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken) =>
        ReadAsync(connection =>
        {
            var limit = Math.Clamp(query.Limit, 1, 1000);
            var where = new List<string>();
            var parameters = new List<(string, object?)>();
            void Filter(string clause, string name, object? value)
            {
                where.Add(clause);
                parameters.Add((name, value));
            }
            if (query.Campaign is not null) Filter("campaign = $campaign", "$campaign", query.Campaign);
            if (query.State is not null) Filter("state = $state", "$state", query.State);
            if (query.Stream is not null) Filter("stream = $stream", "$stream", query.Stream);
            if (query.RunFrom is not null) Filter("run >= $runFrom", "$runFrom", query.RunFrom);
            if (query.RunTo is not null) Filter("run <= $runTo", "$runTo", query.RunTo);
            // Files with an output in the dataset: read from the saga document, so it narrows what the other filters found.
            if (query.Dataset is not null) Filter("EXISTS (SELECT 1 FROM json_each(document, '$.outputs') WHERE json_extract(value, '$.output.dataset') = $dataset)", "$dataset", query.Dataset);
            if (query.FailureSignature is not null) Filter("json_extract(document, '$.failureSignature') = $signature", "$signature", query.FailureSignature);
            if (query.After is not null)
            {
                var (run, name) = FileCursor.Decode(query.After);
                where.Add("(run > $afterRun OR (run = $afterRun AND name > $afterName))");
                parameters.Add(("$afterRun", run));
                parameters.Add(("$afterName", name));
            }
            parameters.Add(("$limit", limit + 1));
            var sql = "SELECT id, campaign, run, stream, name, state, attempt, updated_at, failure FROM file_sagas"
                + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "")
                + " ORDER BY run, name LIMIT $limit";
            using var command = Command(connection, sql, [.. parameters]);
            using var reader = command.ExecuteReader();
            var files = new List<FileSummary>();
            while (reader.Read())
            {
                files.Add(new FileSummary(
                    Guid.Parse(reader.GetString(0)),
                    reader.GetString(1),
                    reader.GetInt32(2),
                    reader.GetString(3),
                    reader.GetString(4),
                    reader.GetString(5),
                    reader.GetInt32(6),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7)),
                    reader.IsDBNull(8) ? null : reader.GetString(8)));
            }
            string? next = null;
            if (files.Count > limit)
            {
                files.RemoveAt(files.Count - 1);
                next = FileCursor.Encode(files[^1].Run, files[^1].LogicalName);
            }
            return new FilePage(files, next);
        });

    public Task<IReadOnlyList<StateCount>> CountByStateAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<StateCount>>(connection =>
        {
            using var command = Command(connection, "SELECT campaign, state, files FROM state_counts WHERE files > 0 ORDER BY campaign, state");
            using var reader = command.ExecuteReader();
            var counts = new List<StateCount>();
            while (reader.Read())
            {
                counts.Add(new StateCount(reader.GetString(0), reader.GetString(1), reader.GetInt64(2)));
            }
            return counts;
        });

    public Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<FailureGroup>>(connection =>
        {
            // Failed files are found on the state index; the classification lives in the saga document.
            using var command = Command(connection, """
                SELECT campaign,
                       COALESCE(json_extract(document, '$.failureStage'), ''),
                       COALESCE(json_extract(document, '$.failureSignature'), ''),
                       json_extract(document, '$.failureRelease'),
                       COUNT(*), MAX(updated_at), COALESCE(MIN(failure), '')
                FROM file_sagas WHERE state = 'Failed' AND ($campaign IS NULL OR campaign = $campaign)
                GROUP BY 1, 2, 3, 4
                """, ("$campaign", campaign));
            using var reader = command.ExecuteReader();
            var groups = new List<FailureGroup>();
            while (reader.Read())
            {
                groups.Add(new FailureGroup(
                    reader.GetString(0),
                    reader.GetString(1) is { Length: > 0 } stage ? stage : FailureGroup.Unclassified,
                    reader.GetString(2) is { Length: > 0 } signature ? signature : FailureGroup.Unclassified,
                    reader.IsDBNull(3) ? null : reader.GetString(3),
                    reader.GetInt64(4),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)),
                    reader.GetString(6)));
            }
            return FailureGroups.InTableOrder(groups);
        });

    public Task<IReadOnlyList<StalledFile>> FindStalledAsync(DateTimeOffset now, DateTimeOffset? updatedBefore, int limit, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<StalledFile>>(connection =>
        {
            using var command = Command(connection, """
                SELECT id, version, state, campaign, run, stream FROM file_sagas
                WHERE state NOT IN ('Archived', 'Failed', 'Cancelled')
                  AND ((deadline IS NOT NULL AND deadline < $now) OR ($before IS NOT NULL AND updated_at < $before))
                ORDER BY updated_at LIMIT $limit
                """,
                ("$now", now.ToUnixTimeMilliseconds()),
                ("$before", updatedBefore?.ToUnixTimeMilliseconds()),
                ("$limit", limit));
            using var reader = command.ExecuteReader();
            var stalled = new List<StalledFile>();
            while (reader.Read())
            {
                stalled.Add(new StalledFile(Guid.Parse(reader.GetString(0)), reader.GetInt32(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4), reader.GetString(5)));
            }
            return stalled;
        });

    public Task<IReadOnlyDictionary<int, RunProgress>> RunProgressAsync(string campaign, IReadOnlyCollection<int> runs, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyDictionary<int, RunProgress>>(connection =>
        {
            var progress = new Dictionary<int, RunProgress>();
            using var command = Command(connection, """
                SELECT COUNT(*), COALESCE(SUM(state IN ('Reconstructed', 'Merged', 'Archived', 'Failed', 'Cancelled')), 0)
                FROM file_sagas WHERE run = $run AND campaign = $campaign
                """, ("$run", 0), ("$campaign", campaign));
            foreach (var run in runs.Distinct())
            {
                command.Parameters["$run"].Value = run;
                using var reader = command.ExecuteReader();
                reader.Read();
                progress[run] = new RunProgress(reader.GetInt32(0), reader.GetInt32(1));
            }
            return progress;
        });

    public Task<int?> OldestUnfinishedRunAsync(string campaign, CancellationToken cancellationToken) =>
        ReadAsync(connection =>
        {
            // One index lookup per in-flight state (campaign, state, run): no scan of the finished files.
            var lookups = string.Join(" UNION ALL ", FileStates.BeforeReconstructed.Select((_, i) =>
                $"SELECT MIN(run) AS run FROM file_sagas WHERE campaign = $campaign AND state = $s{i}"));
            using var command = Command(connection, $"SELECT MIN(run) FROM ({lookups})",
                [("$campaign", campaign), .. FileStates.BeforeReconstructed.Select((state, i) => ($"$s{i}", (object?)state))]);
            var oldest = command.ExecuteScalar();
            return oldest is null or DBNull ? (int?)null : Convert.ToInt32(oldest, CultureInfo.InvariantCulture);
        });

    public Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, IReadOnlyCollection<int> runs, CancellationToken cancellationToken) =>
        ReadAsync(connection => CountPerRun(connection, """
            SELECT s.run, COUNT(*) FROM file_sagas AS s, json_each(s.document, '$.outputs') AS o
            WHERE s.campaign = $campaign AND s.run = $run AND json_extract(o.value, '$.output.dataset') = $dataset GROUP BY s.run
            """, campaign, dataset, runs));

    /// <summary>Runs one per-run count query for each run (an index lookup each), and keeps the runs with a count.</summary>
    private static IReadOnlyDictionary<int, int> CountPerRun(SqliteConnection connection, string sql, string campaign, string dataset, IReadOnlyCollection<int> runs)
    {
        var counts = new Dictionary<int, int>();
        using var command = Command(connection, sql, ("$campaign", campaign), ("$dataset", dataset), ("$run", 0));
        foreach (var run in runs.Distinct())
        {
            command.Parameters["$run"].Value = run;
            using var reader = command.ExecuteReader();
            if (reader.Read())
            {
                counts[reader.GetInt32(0)] = reader.GetInt32(1);
            }
        }
        return counts;
    }

    // ---- runs -------------------------------------------------------------------------------

    public Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using (var existing = Command(connection, "SELECT digest FROM runs WHERE run = $run", ("$run", run)))
            {
                existing.Transaction = transaction;
                if (existing.ExecuteScalar() is string known)
                {
                    return known == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
                }
            }
            foreach (var entry in rawFiles)
            {
                if (!AddCatalogEntry(connection, transaction, entry))
                {
                    // A raw file of this run is already catalogued under another run's announcement: refuse the whole run.
                    throw new RefusedWrite(RunRegistration.Conflicting);
                }
            }
            using var insert = Command(connection, "INSERT INTO runs (run, digest, files, registered_at, announcement) VALUES ($run, $digest, $files, $at, $announcement)",
                ("$run", run), ("$digest", digest), ("$files", rawFiles.Count), ("$at", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()),
                ("$announcement", announcement is null ? null : JsonSerializer.Serialize(announcement, Json)));
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
            return RunRegistration.New;
        }, cancellationToken);

    public Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<RunRecord>>(connection =>
        {
            using var command = Command(connection, "SELECT run, files, registered_at FROM runs ORDER BY run");
            using var reader = command.ExecuteReader();
            var runs = new List<RunRecord>();
            while (reader.Read())
            {
                runs.Add(new RunRecord(reader.GetInt32(0), reader.GetInt32(1), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2))));
            }
            return runs;
        });

    // ---- catalog ----------------------------------------------------------------------------

    public Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            if (!AddCatalogEntry(connection, transaction, entry))
            {
                throw new ConcurrencyConflictException($"Catalog already holds a different '{entry.Name}' in area '{entry.Area}'.");
            }
            return 0;
        }, cancellationToken);

    /// <summary>Inserts the entry; true if it was new or identical to the stored one.</summary>
    private static bool AddCatalogEntry(SqliteConnection connection, SqliteTransaction transaction, CatalogEntry entry)
    {
        using var insert = Command(connection, """
            INSERT INTO catalog (name, area, kind, campaign, dataset, size, adler32, events, sources, created_at, manifest)
            VALUES ($name, $area, $kind, $campaign, $dataset, $size, $adler32, $events, $sources, $created, $manifest)
            ON CONFLICT(name, area) DO NOTHING
            """,
            ("$name", entry.Name), ("$area", entry.Area), ("$kind", entry.Kind), ("$campaign", entry.Campaign),
            ("$dataset", entry.Dataset), ("$size", entry.Size), ("$adler32", entry.Adler32), ("$events", entry.Events),
            ("$sources", JsonSerializer.Serialize(entry.Sources, Json)), ("$created", entry.CreatedAt.ToUnixTimeMilliseconds()), ("$manifest", entry.Manifest));
        insert.Transaction = transaction;
        if (insert.ExecuteNonQuery() == 1)
        {
            return true;
        }
        using var existing = Command(connection, "SELECT size, adler32, kind FROM catalog WHERE name = $name AND area = $area",
            ("$name", entry.Name), ("$area", entry.Area));
        existing.Transaction = transaction;
        using var reader = existing.ExecuteReader();
        return reader.Read() && reader.GetInt64(0) == entry.Size && reader.GetString(1) == entry.Adler32 && reader.GetString(2) == entry.Kind;
    }

    public Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken) =>
        ReadAsync(connection => ReadCatalog(connection, "WHERE name = $name ORDER BY area", ("$name", name)));

    public Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken) =>
        ReadAsync(connection => ReadCatalog(connection,
            "WHERE kind = $kind AND ($campaign IS NULL OR campaign = $campaign) ORDER BY dataset, name",
            ("$kind", kind), ("$campaign", campaign)));

    private static IReadOnlyList<CatalogEntry> ReadCatalog(SqliteConnection connection, string clause, params (string, object?)[] parameters)
    {
        using var command = Command(connection,
            "SELECT name, area, kind, campaign, dataset, size, adler32, events, sources, created_at, manifest, bad FROM catalog " + clause, parameters);
        using var reader = command.ExecuteReader();
        var entries = new List<CatalogEntry>();
        while (reader.Read())
        {
            entries.Add(new CatalogEntry(
                reader.GetString(0),
                reader.GetString(1),
                reader.GetString(2),
                reader.IsDBNull(3) ? null : reader.GetString(3),
                reader.IsDBNull(4) ? null : reader.GetString(4),
                reader.GetInt64(5),
                reader.GetString(6),
                reader.GetInt64(7),
                JsonSerializer.Deserialize<List<MergedSource>>(reader.GetString(8), Json) ?? [],
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(9)),
                reader.IsDBNull(10) ? null : reader.GetString(10),
                reader.IsDBNull(11) ? null : reader.GetString(11)));
        }
        return entries;
    }

    public Task<bool> MarkBadAsync(string name, string area, string? reason, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var update = Command(connection, "UPDATE catalog SET bad = $bad WHERE name = $name AND area = $area",
                ("$bad", reason), ("$name", name), ("$area", area));
            update.Transaction = transaction;
            return update.ExecuteNonQuery() == 1;
        }, cancellationToken);

    // ---- merge buffer -----------------------------------------------------------------------

    private const string OutputColumns =
        "output_id, file_id, campaign, dataset, run, stream, section, raw_name, name, size, adler32, events, added_at, merged_name";

    public Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var insert = Command(connection, $"""
                INSERT INTO merge_outputs ({OutputColumns})
                VALUES ($id, $file, $campaign, $dataset, $run, $stream, $section, $raw, $name, $size, $adler32, $events, $added, NULL)
                ON CONFLICT(output_id) DO NOTHING
                """,
                ("$id", output.OutputId), ("$file", Key(output.FileId)), ("$campaign", output.Campaign), ("$dataset", output.Dataset),
                ("$run", output.Run), ("$stream", output.Stream), ("$section", output.Section), ("$raw", output.RawName),
                ("$name", output.Name), ("$size", output.Size), ("$adler32", output.Adler32), ("$events", output.Events),
                ("$added", output.AddedAt.ToUnixTimeMilliseconds()));
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
            using var select = Command(connection, $"SELECT {OutputColumns} FROM merge_outputs WHERE output_id = $id", ("$id", output.OutputId));
            select.Transaction = transaction;
            return ReadOutputs(select).Single();
        }, cancellationToken);

    public Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<DatasetBuffer>>(connection =>
        {
            using var command = Command(connection, """
                SELECT campaign, dataset, COUNT(*), SUM(size), MIN(added_at), MAX(added_at)
                FROM merge_outputs WHERE merged_name IS NULL GROUP BY campaign, dataset ORDER BY campaign, dataset
                """);
            using var reader = command.ExecuteReader();
            var buffers = new List<DatasetBuffer>();
            while (reader.Read())
            {
                buffers.Add(new DatasetBuffer(reader.GetString(0), reader.GetString(1), reader.GetInt32(2), reader.GetInt64(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5))));
            }
            return buffers;
        });

    public Task<IReadOnlyList<PendingOutput>> ListPendingAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        ReadAsync(connection =>
        {
            using var command = Command(connection, $"""
                SELECT {OutputColumns} FROM merge_outputs
                WHERE campaign = $campaign AND dataset = $dataset AND merged_name IS NULL
                ORDER BY run, section, stream, output_id LIMIT $limit
                """, ("$campaign", campaign), ("$dataset", dataset), ("$limit", limit));
            return ReadOutputs(command);
        });

    public Task<bool> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            var marked = 0;
            foreach (var id in outputIds)
            {
                using var mark = Command(connection, "UPDATE merge_outputs SET merged_name = $merged WHERE output_id = $id AND merged_name IS NULL",
                    ("$merged", merged.Name), ("$id", id));
                mark.Transaction = transaction;
                marked += mark.ExecuteNonQuery();
            }
            if (marked != outputIds.Count)
            {
                throw new RefusedWrite(false);
            }
            using var insert = Command(connection, """
                INSERT INTO merged_files (name, campaign, dataset, size, adler32, events, archived, created_at, updated_at, manifest)
                VALUES ($name, $campaign, $dataset, $size, $adler32, $events, 0, $created, $created, $manifest)
                """,
                ("$name", merged.Name), ("$campaign", merged.Campaign), ("$dataset", merged.Dataset), ("$size", merged.Size),
                ("$adler32", merged.Adler32), ("$events", merged.Events), ("$created", merged.CreatedAt.ToUnixTimeMilliseconds()), ("$manifest", merged.Manifest));
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
            return true;
        }, cancellationToken);

    public Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken) =>
        ReadAsync(connection => ReadMerged(connection, "WHERE name = $name", ("$name", name)).SingleOrDefault());

    public Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken) =>
        ReadAsync(connection =>
        {
            using var command = Command(connection, $"SELECT {OutputColumns} FROM merge_outputs WHERE merged_name = $merged ORDER BY run, section, stream, output_id",
                ("$merged", mergedName));
            return ReadOutputs(command);
        });

    public Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken) =>
        ReadAsync(connection => ReadMerged(connection, "WHERE archived = 0 AND updated_at < $before ORDER BY created_at",
            ("$before", updatedBefore.ToUnixTimeMilliseconds())));

    public Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, "UPDATE merged_files SET archived = 1, updated_at = $now WHERE name = $name",
                ("$now", DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()), ("$name", mergedName));
            command.Transaction = transaction;
            return command.ExecuteNonQuery();
        }, cancellationToken);

    public Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedOfDatasetAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken) =>
        ReadAsync(connection => ReadMerged(connection, "WHERE campaign = $campaign AND dataset = $dataset AND archived = 0 ORDER BY created_at, name LIMIT $limit",
            ("$campaign", campaign), ("$dataset", dataset), ("$limit", limit)));

    public Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, IReadOnlyCollection<int> runs, CancellationToken cancellationToken) =>
        ReadAsync(connection => CountPerRun(connection,
            "SELECT run, COUNT(*) FROM merge_outputs WHERE campaign = $campaign AND dataset = $dataset AND run = $run GROUP BY run",
            campaign, dataset, runs));

    private static IReadOnlyList<MergedFileRecord> ReadMerged(SqliteConnection connection, string clause, params (string, object?)[] parameters)
    {
        using var command = Command(connection,
            "SELECT name, campaign, dataset, size, adler32, events, archived, created_at, updated_at, manifest FROM merged_files " + clause, parameters);
        using var reader = command.ExecuteReader();
        var files = new List<MergedFileRecord>();
        while (reader.Read())
        {
            files.Add(new MergedFileRecord(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetInt64(3),
                reader.GetString(4), reader.GetInt64(5), reader.GetInt64(6) != 0,
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(7)), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(8)),
                reader.IsDBNull(9) ? null : reader.GetString(9)));
        }
        return files;
    }

    private static IReadOnlyList<PendingOutput> ReadOutputs(SqliteCommand command)
    {
        using var reader = command.ExecuteReader();
        var outputs = new List<PendingOutput>();
        while (reader.Read())
        {
            outputs.Add(new PendingOutput(
                reader.GetString(0), Guid.Parse(reader.GetString(1)), reader.GetString(2), reader.GetString(3), reader.GetInt32(4),
                reader.GetString(5), reader.GetInt32(6), reader.GetString(7), reader.GetString(8), reader.GetInt64(9),
                reader.GetString(10), reader.GetInt64(11), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(12)),
                reader.IsDBNull(13) ? null : reader.GetString(13)));
        }
        return outputs;
    }

    // ---- health -----------------------------------------------------------------------------

    public Task RecordHeartbeatAsync(InstanceRecord heartbeat, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, """
                INSERT INTO instances (instance, services, host, started_at, last_seen_at, load) VALUES ($instance, $services, $host, $started, $seen, $load)
                ON CONFLICT(instance) DO UPDATE SET services = excluded.services, host = excluded.host, started_at = excluded.started_at,
                    last_seen_at = excluded.last_seen_at, load = excluded.load WHERE excluded.last_seen_at > instances.last_seen_at
                """, ("$load", JsonSerializer.Serialize(heartbeat.Load, Json)),
                ("$instance", heartbeat.Instance), ("$services", heartbeat.Services), ("$host", heartbeat.Host),
                ("$started", heartbeat.StartedAt.ToUnixTimeMilliseconds()), ("$seen", heartbeat.LastSeenAt.ToUnixTimeMilliseconds()));
            command.Transaction = transaction;
            return command.ExecuteNonQuery();
        }, cancellationToken);

    public Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<InstanceRecord>>(connection =>
        {
            using var command = Command(connection, "SELECT instance, services, host, started_at, last_seen_at, load FROM instances ORDER BY instance");
            using var reader = command.ExecuteReader();
            var instances = new List<InstanceRecord>();
            while (reader.Read())
            {
                instances.Add(new InstanceRecord(reader.GetString(0), reader.GetString(1), reader.GetString(2),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3)), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)),
                    JsonSerializer.Deserialize<List<StageLoad>>(reader.GetString(5), Json) ?? []));
            }
            return instances;
        });

    public Task<bool> RaiseAlertAsync(string key, string kind, string severity, string message, DateTimeOffset at, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var refresh = Command(connection, "UPDATE alerts SET last_seen_at = $at, message = $message, severity = $severity WHERE key = $key AND resolved_at IS NULL",
                ("$at", at.ToUnixTimeMilliseconds()), ("$message", message), ("$severity", severity), ("$key", key));
            refresh.Transaction = transaction;
            if (refresh.ExecuteNonQuery() > 0)
            {
                return false;
            }
            using var insert = Command(connection, """
                INSERT INTO alerts (key, kind, severity, message, raised_at, last_seen_at) VALUES ($key, $kind, $severity, $message, $at, $at)
                """, ("$key", key), ("$kind", kind), ("$severity", severity), ("$message", message), ("$at", at.ToUnixTimeMilliseconds()));
            insert.Transaction = transaction;
            insert.ExecuteNonQuery();
            return true;
        }, cancellationToken);

    public Task<bool> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, "UPDATE alerts SET resolved_at = $at WHERE key = $key AND resolved_at IS NULL",
                ("$at", at.ToUnixTimeMilliseconds()), ("$key", key));
            command.Transaction = transaction;
            return command.ExecuteNonQuery() > 0;
        }, cancellationToken);

    public Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<AlertRecord>>(connection =>
        {
            using var command = Command(connection, $"""
                SELECT key, kind, severity, message, raised_at, last_seen_at, resolved_at FROM alerts
                {(activeOnly ? "WHERE resolved_at IS NULL" : "")} ORDER BY raised_at DESC, id DESC LIMIT $limit
                """, ("$limit", limit));
            using var reader = command.ExecuteReader();
            var alerts = new List<AlertRecord>();
            while (reader.Read())
            {
                alerts.Add(new AlertRecord(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(4)), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)),
                    reader.IsDBNull(6) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(6))));
            }
            return alerts;
        });

    // ---- control ----------------------------------------------------------------------------

    public Task PauseAsync(string stage, string by, DateTimeOffset at, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, "INSERT INTO paused (stage, by, since) VALUES ($stage, $by, $since) ON CONFLICT(stage) DO NOTHING",
                ("$stage", stage), ("$by", by), ("$since", at.ToUnixTimeMilliseconds()));
            command.Transaction = transaction;
            return command.ExecuteNonQuery();
        }, cancellationToken);

    public Task<bool> ResumeAsync(string stage, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, "DELETE FROM paused WHERE stage = $stage", ("$stage", stage));
            command.Transaction = transaction;
            return command.ExecuteNonQuery() > 0;
        }, cancellationToken);

    public Task<IReadOnlyList<PausedStage>> ListPausedAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<PausedStage>>(connection =>
        {
            using var command = Command(connection, "SELECT stage, by, since FROM paused ORDER BY stage");
            using var reader = command.ExecuteReader();
            var paused = new List<PausedStage>();
            while (reader.Read())
            {
                paused.Add(new PausedStage(reader.GetString(0), reader.GetString(1), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2))));
            }
            return paused;
        });

    // ---- flow control -----------------------------------------------------------------------

    public Task<bool> TryReserveAsync(string area, string name, long bytes, AreaLimits limits, DateTimeOffset at, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            var usage = ReadArea(connection, transaction, area);
            var held = HeldBytes(connection, transaction, area, name);
            if (held is null)
            {
                if (AreaLedger.Blocked(usage.Blocked, usage.Bytes, limits))
                {
                    WriteArea(connection, transaction, usage with { Blocked = true });
                    return false;
                }
                usage = usage with { Files = usage.Files + 1, Blocked = false };
            }
            PutFile(connection, transaction, area, new AreaFile(name, bytes), at);
            var total = usage.Bytes - (held ?? 0) + bytes;
            WriteArea(connection, transaction, usage with
            {
                Bytes = total,
                PeakBytes = Math.Max(usage.PeakBytes, total),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, bytes),
            });
            return true;
        }, cancellationToken);

    public Task ReplaceReservationAsync(string area, string name, IReadOnlyList<AreaFile> files, DateTimeOffset at, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            var usage = ReadArea(connection, transaction, area);
            var removed = HeldBytes(connection, transaction, area, name);
            var bytes = usage.Bytes - (removed ?? 0);
            var count = usage.Files - (removed is null ? 0 : 1);
            Run(connection, transaction, "DELETE FROM area_files WHERE area = $area AND name = $name", ("$area", area), ("$name", name));
            foreach (var file in files)
            {
                var held = HeldBytes(connection, transaction, area, file.Name);
                bytes += file.Bytes - (held ?? 0);
                count += held is null ? 1 : 0;
                PutFile(connection, transaction, area, file, at);
            }
            WriteArea(connection, transaction, usage with
            {
                Bytes = bytes,
                Files = count,
                PeakBytes = Math.Max(usage.PeakBytes, bytes),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, files.Count == 0 ? 0 : files.Max(f => f.Bytes)),
            });
            return true;
        }, cancellationToken);

    public Task ReleaseAsync(string area, string name, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            var held = HeldBytes(connection, transaction, area, name);
            if (held is null)
            {
                return false;
            }
            Run(connection, transaction, "DELETE FROM area_files WHERE area = $area AND name = $name", ("$area", area), ("$name", name));
            var usage = ReadArea(connection, transaction, area);
            WriteArea(connection, transaction, usage with { Bytes = usage.Bytes - held.Value, Files = usage.Files - 1 });
            return true;
        }, cancellationToken);

    public Task<IReadOnlyList<AreaUsage>> ListAreaUsageAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<AreaUsage>>(connection =>
        {
            using var command = Command(connection, "SELECT area, bytes, files, blocked, peak_bytes, largest_file_bytes FROM areas ORDER BY area");
            using var reader = command.ExecuteReader();
            var areas = new List<AreaUsage>();
            while (reader.Read())
            {
                areas.Add(new AreaUsage(reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3) != 0, reader.GetInt64(4), reader.GetInt64(5)));
            }
            return areas;
        });

    public Task<IReadOnlyList<AreaReservation>> ListReservationsAsync(string area, DateTimeOffset before, int limit, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<AreaReservation>>(connection =>
        {
            using var command = Command(connection, "SELECT name, bytes, at FROM area_files WHERE area = $area AND at < $before ORDER BY at LIMIT $limit",
                ("$area", area), ("$before", before.ToUnixTimeMilliseconds()), ("$limit", limit));
            using var reader = command.ExecuteReader();
            var reservations = new List<AreaReservation>();
            while (reader.Read())
            {
                reservations.Add(new AreaReservation(area, reader.GetString(0), reader.GetInt64(1), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2))));
            }
            return reservations;
        });

    private static AreaUsage ReadArea(SqliteConnection connection, SqliteTransaction transaction, string area)
    {
        using var command = Command(connection, "SELECT bytes, files, blocked, peak_bytes, largest_file_bytes FROM areas WHERE area = $area", ("$area", area));
        command.Transaction = transaction;
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new AreaUsage(area, reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2) != 0, reader.GetInt64(3), reader.GetInt64(4))
            : new AreaUsage(area, 0, 0, false, 0, 0);
    }

    private static void WriteArea(SqliteConnection connection, SqliteTransaction transaction, AreaUsage usage) =>
        Run(connection, transaction, """
            INSERT INTO areas (area, bytes, files, blocked, peak_bytes, largest_file_bytes) VALUES ($area, $bytes, $files, $blocked, $peak, $largest)
            ON CONFLICT(area) DO UPDATE SET bytes = excluded.bytes, files = excluded.files, blocked = excluded.blocked,
                peak_bytes = excluded.peak_bytes, largest_file_bytes = excluded.largest_file_bytes
            """, ("$area", usage.Area), ("$bytes", usage.Bytes), ("$files", usage.Files), ("$blocked", usage.Blocked ? 1 : 0),
            ("$peak", usage.PeakBytes), ("$largest", usage.LargestFileBytes));

    private static void PutFile(SqliteConnection connection, SqliteTransaction transaction, string area, AreaFile file, DateTimeOffset at) =>
        Run(connection, transaction, """
            INSERT INTO area_files (area, name, bytes, at) VALUES ($area, $name, $bytes, $at)
            ON CONFLICT(area, name) DO UPDATE SET bytes = excluded.bytes
            """, ("$area", area), ("$name", file.Name), ("$bytes", file.Bytes), ("$at", at.ToUnixTimeMilliseconds()));

    private static long? HeldBytes(SqliteConnection connection, SqliteTransaction transaction, string area, string name)
    {
        using var command = Command(connection, "SELECT bytes FROM area_files WHERE area = $area AND name = $name", ("$area", area), ("$name", name));
        command.Transaction = transaction;
        return command.ExecuteScalar() is long bytes ? bytes : null;
    }

    public Task<bool> TryAcquireMoverAsync(string dataset, string holder, int limit, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            var nowMs = now.ToUnixTimeMilliseconds();
            Run(connection, transaction, "DELETE FROM movers WHERE expires <= $now", ("$now", nowMs));
            using var current = Command(connection, "SELECT holder FROM movers WHERE dataset = $dataset", ("$dataset", dataset));
            current.Transaction = transaction;
            var currentHolder = current.ExecuteScalar() as string;
            if (currentHolder is not null && currentHolder != holder)
            {
                return false;
            }
            if (currentHolder is null)
            {
                using var count = Command(connection, "SELECT COUNT(*) FROM movers");
                count.Transaction = transaction;
                if ((long)count.ExecuteScalar()! >= limit)
                {
                    return false;
                }
            }
            Run(connection, transaction, """
                INSERT INTO movers (dataset, holder, since, expires) VALUES ($dataset, $holder, $now, $expires)
                ON CONFLICT(dataset) DO UPDATE SET expires = excluded.expires
                """, ("$dataset", dataset), ("$holder", holder), ("$now", nowMs), ("$expires", (now + lease).ToUnixTimeMilliseconds()));
            return true;
        }, cancellationToken);

    public Task ReleaseMoverAsync(string dataset, string holder, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
            Run(connection, transaction, "DELETE FROM movers WHERE dataset = $dataset AND holder = $holder", ("$dataset", dataset), ("$holder", holder)),
            cancellationToken);

    public Task<IReadOnlyList<MoverLease>> ListMoversAsync(DateTimeOffset now, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<MoverLease>>(connection =>
        {
            using var command = Command(connection, "SELECT dataset, holder, since, expires FROM movers WHERE expires > $now ORDER BY dataset",
                ("$now", now.ToUnixTimeMilliseconds()));
            using var reader = command.ExecuteReader();
            var movers = new List<MoverLease>();
            while (reader.Read())
            {
                movers.Add(new MoverLease(reader.GetString(0), reader.GetString(1),
                    DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2)), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
            }
            return movers;
        });

    public Task SetSettingAsync(FlowSetting setting, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
            Run(connection, transaction, """
                INSERT INTO settings (key, value, by, at) VALUES ($key, $value, $by, $at)
                ON CONFLICT(key) DO UPDATE SET value = excluded.value, by = excluded.by, at = excluded.at
                """, ("$key", setting.Key), ("$value", setting.Value), ("$by", setting.By), ("$at", setting.At.ToUnixTimeMilliseconds())),
            cancellationToken);

    public Task<bool> RemoveSettingAsync(string key, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) => Run(connection, transaction, "DELETE FROM settings WHERE key = $key", ("$key", key)) > 0, cancellationToken);

    public Task<IReadOnlyList<FlowSetting>> ListSettingsAsync(CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<FlowSetting>>(connection =>
        {
            using var command = Command(connection, "SELECT key, value, by, at FROM settings ORDER BY key");
            using var reader = command.ExecuteReader();
            var settings = new List<FlowSetting>();
            while (reader.Read())
            {
                settings.Add(new FlowSetting(reader.GetString(0), reader.GetString(1), reader.GetString(2), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(3))));
            }
            return settings;
        });

    // ---- activity ---------------------------------------------------------------------------

    public Task RecordAsync(string stage, DateTimeOffset at, long bytes, CancellationToken cancellationToken) =>
        WriteAsync((connection, transaction) =>
        {
            using var command = Command(connection, """
                INSERT INTO activity (hour, stage, files, bytes) VALUES ($hour, $stage, 1, $bytes)
                ON CONFLICT(hour, stage) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes
                """, ("$hour", StageActivity.HourOf(at).ToUnixTimeMilliseconds()), ("$stage", stage), ("$bytes", bytes));
            command.Transaction = transaction;
            return command.ExecuteNonQuery();
        }, cancellationToken);

    public Task<IReadOnlyList<StageActivity>> ListActivityAsync(DateTimeOffset since, CancellationToken cancellationToken) =>
        ReadAsync<IReadOnlyList<StageActivity>>(connection =>
        {
            using var command = Command(connection, "SELECT stage, hour, files, bytes FROM activity WHERE hour >= $since ORDER BY hour, stage",
                ("$since", StageActivity.HourOf(since).ToUnixTimeMilliseconds()));
            using var reader = command.ExecuteReader();
            var activity = new List<StageActivity>();
            while (reader.Read())
            {
                activity.Add(new StageActivity(reader.GetString(0), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(1)), reader.GetInt64(2), reader.GetInt64(3)));
            }
            return activity;
        });

    // ---- helpers ----------------------------------------------------------------------------

    private static string Key(Guid id) => id.ToString("D");

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static int Run(SqliteConnection connection, SqliteTransaction transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        using var command = Command(connection, sql, parameters);
        command.Transaction = transaction;
        return command.ExecuteNonQuery();
    }

    private static SqliteCommand Command(SqliteConnection connection, string sql, params (string Name, object? Value)[] parameters)
    {
        var command = connection.CreateCommand();
        command.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        return command;
    }
}
