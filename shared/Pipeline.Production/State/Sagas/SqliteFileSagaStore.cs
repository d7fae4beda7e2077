using System.Text.Json;
using static Pipeline.Production.State.SqliteValues;

namespace Pipeline.Production.State;

/// <summary>
/// The file sagas in SQLite: JSON documents with the columns the queries filter on beside them; every update is a
/// compare-and-set on the version column. Files per campaign and state are kept by triggers in the same
/// transaction as each change, so the summary reads a handful of rows instead of counting millions.
/// </summary>
public sealed class SqliteFileSagaStore : IFileSagaStore, ISqliteStore
{
    private const string Columns = "id, version, state, campaign, run, stream, name, attempt, updated_at, deadline, failure, document";
    private const string Values = "$id, $version, $state, $campaign, $run, $stream, $name, $attempt, $updated, $deadline, $failure, $document";

    private readonly SqliteDatabase _database;

    public SqliteFileSagaStore(SqliteDatabase database)
    {
        _database = database;
        database.Migrate(session => session.Run("""
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
            """));
    }

    public Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken) =>
        _database.ReadAsync(session => session.Scalar("SELECT document FROM file_sagas WHERE id = $id", ("$id", Key(id))) is string document
            ? JsonSerializer.Deserialize<FileState>(document, SqliteDatabase.Json)
            : null);

    public Task InsertAsync(FileState state, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            if (session.Run($"INSERT INTO file_sagas ({Columns}) VALUES ({Values}) ON CONFLICT(id) DO NOTHING", Parameters(state)) == 0)
            {
                throw new ConcurrencyConflictException($"File saga {state.CorrelationId} already exists.");
            }
            return 0;
        }, cancellationToken);

    public Task UpdateAsync(FileState state, int expectedVersion, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            state.Version = expectedVersion + 1;
            var changed = session.Run("""
                UPDATE file_sagas SET version = $version, state = $state, attempt = $attempt, updated_at = $updated,
                    deadline = $deadline, failure = $failure, document = $document
                WHERE id = $id AND version = $expected
                """, [.. Parameters(state), ("$expected", expectedVersion)]);
            if (changed == 0)
            {
                state.Version = expectedVersion;
                throw new ConcurrencyConflictException($"File saga {state.CorrelationId} changed since version {expectedVersion} was read.");
            }
            return 0;
        }, cancellationToken);

    /// <summary>Here in one transaction: an existing id stores none of the batch.</summary>
    public Task BulkInsertAsync(IEnumerable<FileState> states, CancellationToken cancellationToken) =>
        _database.WriteAsync(session =>
        {
            using var command = session.Command($"INSERT INTO file_sagas ({Columns}) VALUES ({Values}) ON CONFLICT(id) DO NOTHING", Parameters(new FileState()));
            command.Prepare();
            foreach (var state in states)
            {
                foreach (var (name, value) in Parameters(state))
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

    private static (string, object?)[] Parameters(FileState state) =>
    [
        ("$id", Key(state.CorrelationId)),
        ("$version", state.Version),
        ("$state", state.CurrentState),
        ("$campaign", state.Campaign),
        ("$run", state.Run),
        ("$stream", state.Stream),
        ("$name", state.LogicalName),
        ("$attempt", state.Attempt),
        ("$updated", Millis(state.UpdatedAt)),
        ("$deadline", state.Deadline is { } deadline ? Millis(deadline) : null),
        ("$failure", state.FailureReason),
        ("$document", JsonSerializer.Serialize(state, SqliteDatabase.Json)),
    ];

    public Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken) =>
        _database.ReadAsync(session =>
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
            var files = session.Rows(sql, r => new FileSummary(Guid.Parse(r.GetString(0)), r.GetString(1), r.GetInt32(2), r.GetString(3),
                r.GetString(4), r.GetString(5), r.GetInt32(6), r.Time(7), r.StringOrNull(8)), [.. parameters]);
            string? next = null;
            if (files.Count > limit)
            {
                files.RemoveAt(files.Count - 1);
                next = FileCursor.Encode(files[^1].Run, files[^1].LogicalName);
            }
            return new FilePage(files, next);
        });

    public Task<IReadOnlyList<StateCount>> CountByStateAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT campaign, state, files FROM state_counts WHERE files > 0 ORDER BY campaign, state",
            r => new StateCount(r.GetString(0), r.GetString(1), r.GetInt64(2)));

    public Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken) =>
        _database.ReadAsync(session => FailureGroups.InTableOrder(session.Rows(
            // Failed files are found on the state index; the classification lives in the saga document.
            $"""
            SELECT campaign,
                   COALESCE(json_extract(document, '$.failureStage'), ''),
                   COALESCE(json_extract(document, '$.failureSignature'), ''),
                   json_extract(document, '$.failureRelease'),
                   COUNT(*), MAX(updated_at), COALESCE(MIN(failure), '')
            FROM file_sagas WHERE state = '{FileStates.Failed}' AND ($campaign IS NULL OR campaign = $campaign)
            GROUP BY 1, 2, 3, 4
            """,
            r => new FailureGroup(
                r.GetString(0),
                r.GetString(1) is { Length: > 0 } stage ? stage : FailureGroup.Unclassified,
                r.GetString(2) is { Length: > 0 } signature ? signature : FailureGroup.Unclassified,
                r.StringOrNull(3),
                r.GetInt64(4),
                r.Time(5),
                r.GetString(6)),
            ("$campaign", campaign))));

    public Task<IReadOnlyList<StalledFile>> FindStalledAsync(DateTimeOffset now, DateTimeOffset? updatedBefore, int limit, CancellationToken cancellationToken) =>
        _database.RowsAsync($"""
            SELECT id, version, state, campaign, run, stream FROM file_sagas
            WHERE state NOT IN ({string.Join(", ", FileStates.Final.Order(StringComparer.Ordinal).Select(s => $"'{s}'"))})
              AND ((deadline IS NOT NULL AND deadline < $now)
                OR ($before IS NOT NULL AND updated_at < $before
                    -- A batch job outlives the transport's messages: its file waits for adoption or its deadline, not for recovery.
                    AND NOT (state = '{FileStates.Reconstructing}' AND json_extract(document, '$.batchJob') IS NOT NULL)))
            ORDER BY updated_at LIMIT $limit
            """,
            r => new StalledFile(Guid.Parse(r.GetString(0)), r.GetInt32(1), r.GetString(2), r.GetString(3), r.GetInt32(4), r.GetString(5)),
            ("$now", Millis(now)), ("$before", updatedBefore is { } before ? Millis(before) : null), ("$limit", limit));
}
