using System.Text.Json;
using NpgsqlTypes;
using static Pipeline.Production.State.PostgresValues;

namespace Pipeline.Production.State;

/// <summary>
/// The file sagas in PostgreSQL: JSON documents with the columns the queries filter on beside them; every update is a
/// compare-and-set on the version column. Files per campaign and state are kept by a trigger in the same transaction
/// as each change, so the summary reads a handful of rows instead of counting millions.
/// </summary>
public sealed class PostgresFileSagaStore : IFileSagaStore, IPostgresStore
{
    private const string Columns = "id, version, state, campaign, run, stream, name, attempt, updated_at, deadline, failure, document";
    private const string Values = "@id, @version, @state, @campaign, @run, @stream, @name, @attempt, @updated, @deadline, @failure, @document::jsonb";

    private static readonly string FinalStates = string.Join(", ", FileStates.Final.Order(StringComparer.Ordinal).Select(s => $"'{s}'"));

    private readonly PostgresDatabase _database;

    public PostgresFileSagaStore(PostgresDatabase database)
    {
        _database = database;
        database.Migrate("file_sagas",
        [
            $"""
            CREATE TABLE file_sagas (
                id UUID PRIMARY KEY,
                version INTEGER NOT NULL,
                state TEXT NOT NULL,
                campaign TEXT NOT NULL,
                run INTEGER NOT NULL,
                stream TEXT NOT NULL,
                name TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                updated_at BIGINT NOT NULL,
                deadline BIGINT NULL,
                failure TEXT NULL,
                document JSONB NOT NULL);
            -- Listing pages in (run, name) order: one index per filter combination the API offers, ending in (run, name).
            CREATE INDEX ix_file_sagas_run ON file_sagas(run, name);
            CREATE INDEX ix_file_sagas_state_run ON file_sagas(state, run, name);
            CREATE INDEX ix_file_sagas_campaign_state_run ON file_sagas(campaign, state, run, name);
            CREATE INDEX ix_file_sagas_campaign_stream_run ON file_sagas(campaign, stream, run, name);
            CREATE INDEX ix_file_sagas_stream_run ON file_sagas(stream, run, name);
            -- The watchdog's sweeps: files past their deadline, and files not final by last write.
            CREATE INDEX ix_file_sagas_deadline ON file_sagas(deadline) WHERE deadline IS NOT NULL;
            CREATE INDEX ix_file_sagas_open_updated ON file_sagas(updated_at) WHERE state NOT IN ({FinalStates});
            CREATE TABLE state_counts (
                campaign TEXT NOT NULL,
                state TEXT NOT NULL,
                files BIGINT NOT NULL,
                PRIMARY KEY (campaign, state));
            CREATE FUNCTION count_file_states() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'UPDATE' THEN
                    IF old.state = new.state THEN
                        RETURN new;
                    END IF;
                    UPDATE state_counts SET files = files - 1 WHERE campaign = old.campaign AND state = old.state;
                END IF;
                INSERT INTO state_counts (campaign, state, files) VALUES (new.campaign, new.state, 1)
                ON CONFLICT (campaign, state) DO UPDATE SET files = state_counts.files + 1;
                RETURN new;
            END $$;
            CREATE TRIGGER tr_file_sagas_counted AFTER INSERT OR UPDATE OF state ON file_sagas
                FOR EACH ROW EXECUTE FUNCTION count_file_states();
            """,
        ]);
    }

    public Task<FileState?> LoadAsync(Guid id, CancellationToken cancellationToken) =>
        _database.ReadAsync(async session => await session.ScalarAsync("SELECT document::text FROM file_sagas WHERE id = @id", ("id", id)) is string document
            ? JsonSerializer.Deserialize<FileState>(document, SqliteDatabase.Json)
            : null, cancellationToken);

    public Task InsertAsync(FileState state, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            if (await session.RunAsync($"INSERT INTO file_sagas ({Columns}) VALUES ({Values}) ON CONFLICT (id) DO NOTHING", Parameters(state)) == 0)
            {
                throw new ConcurrencyConflictException($"File saga {state.CorrelationId} already exists.");
            }
            return 0;
        }, cancellationToken);

    public Task UpdateAsync(FileState state, int expectedVersion, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            state.Version = expectedVersion + 1;
            var changed = await session.RunAsync("""
                UPDATE file_sagas SET version = @version, state = @state, attempt = @attempt, updated_at = @updated,
                    deadline = @deadline, failure = @failure, document = @document::jsonb
                WHERE id = @id AND version = @expected
                """, [.. Parameters(state), ("expected", expectedVersion)]);
            if (changed == 0)
            {
                state.Version = expectedVersion;
                throw new ConcurrencyConflictException($"File saga {state.CorrelationId} changed since version {expectedVersion} was read.");
            }
            return 0;
        }, cancellationToken);

    /// <summary>
    /// Here in one transaction: an existing id stores none of the batch. The batch is copied into a temporary table
    /// (the COPY protocol: one round trip for thousands of rows) and inserted from there in one statement.
    /// </summary>
    public Task BulkInsertAsync(IEnumerable<FileState> states, CancellationToken cancellationToken) =>
        _database.WriteAsync(async session =>
        {
            await session.RunAsync("CREATE TEMPORARY TABLE bulk_sagas (LIKE file_sagas INCLUDING DEFAULTS) ON COMMIT DROP");
            var copied = await session.ImportAsync($"COPY bulk_sagas ({Columns}) FROM STDIN (FORMAT BINARY)", async importer =>
            {
                foreach (var state in states)
                {
                    await importer.StartRowAsync(cancellationToken);
                    await importer.WriteAsync(state.CorrelationId, NpgsqlDbType.Uuid, cancellationToken);
                    await importer.WriteAsync(state.Version, NpgsqlDbType.Integer, cancellationToken);
                    await importer.WriteAsync(state.CurrentState, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(state.Campaign, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(state.Run, NpgsqlDbType.Integer, cancellationToken);
                    await importer.WriteAsync(state.Stream, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(state.LogicalName, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(state.Attempt, NpgsqlDbType.Integer, cancellationToken);
                    await importer.WriteAsync(Millis(state.UpdatedAt), NpgsqlDbType.Bigint, cancellationToken);
                    await importer.WriteAsync(state.Deadline is { } deadline ? Millis(deadline) : (long?)null, NpgsqlDbType.Bigint, cancellationToken);
                    await importer.WriteAsync(state.FailureReason, NpgsqlDbType.Text, cancellationToken);
                    await importer.WriteAsync(JsonSerializer.Serialize(state, SqliteDatabase.Json), NpgsqlDbType.Jsonb, cancellationToken);
                }
            });
            if (await session.ScalarAsync("SELECT b.id FROM bulk_sagas b JOIN file_sagas f ON f.id = b.id LIMIT 1") is Guid existing)
            {
                throw new ConcurrencyConflictException($"File saga {existing} already exists.");
            }
            var inserted = await session.RunAsync($"INSERT INTO file_sagas ({Columns}) SELECT {Columns} FROM bulk_sagas ON CONFLICT (id) DO NOTHING");
            if ((ulong)inserted != copied)
            {
                throw new ConcurrencyConflictException($"{copied - (ulong)inserted} file sagas of the batch share an id with another of it.");
            }
            return 0;
        }, cancellationToken);

    private static (string, object?)[] Parameters(FileState state) =>
    [
        ("id", state.CorrelationId),
        ("version", state.Version),
        ("state", state.CurrentState),
        ("campaign", state.Campaign),
        ("run", state.Run),
        ("stream", state.Stream),
        ("name", state.LogicalName),
        ("attempt", state.Attempt),
        ("updated", Millis(state.UpdatedAt)),
        ("deadline", state.Deadline is { } deadline ? Millis(deadline) : (long?)null),
        ("failure", state.FailureReason),
        ("document", JsonSerializer.Serialize(state, SqliteDatabase.Json)),
    ];

    public async Task<FilePage> ListAsync(FileQuery query, CancellationToken cancellationToken)
    {
        var limit = Math.Clamp(query.Limit, 1, 1000);
        var files = (await _database.RowsAsync(Files(query with { Limit = limit + 1 }), r => new FileSummary(r.GetGuid(0), r.GetString(1), r.GetInt32(2), r.GetString(3),
            r.GetString(4), r.GetString(5), r.GetInt32(6), r.Time(7), r.StringOrNull(8)), cancellationToken)).ToList();
        string? next = null;
        if (files.Count > limit)
        {
            files.RemoveAt(files.Count - 1);
            next = FileCursor.Encode(files[^1].Run, files[^1].LogicalName);
        }
        return new FilePage(files, next);
    }

    /// <summary>A page of the listing: <see cref="FileQuery.Limit"/> files in (run, name) order, from the index that ends in (run, name).</summary>
    public static PostgresQuery Files(FileQuery query)
    {
        var where = new List<string>();
        var parameters = new List<(string, object?)>();
        void Filter(string clause, string name, object? value)
        {
            where.Add(clause);
            parameters.Add((name, value));
        }
        if (query.Campaign is not null) Filter("campaign = @campaign", "campaign", query.Campaign);
        if (query.State is not null) Filter("state = @state", "state", query.State);
        if (query.Stream is not null) Filter("stream = @stream", "stream", query.Stream);
        if (query.RunFrom is not null) Filter("run >= @runFrom", "runFrom", query.RunFrom);
        if (query.RunTo is not null) Filter("run <= @runTo", "runTo", query.RunTo);
        // Files with an output in the dataset: read from the saga document, so it narrows what the other filters found.
        if (query.Dataset is not null) Filter("EXISTS (SELECT 1 FROM jsonb_array_elements(document->'outputs') o WHERE o->'output'->>'dataset' = @dataset)", "dataset", query.Dataset);
        if (query.FailureSignature is not null) Filter("document->>'failureSignature' = @signature", "signature", query.FailureSignature);
        if (query.After is not null)
        {
            var (run, name) = FileCursor.Decode(query.After);
            // A row comparison: the index on (…, run, name) starts right after the cursor.
            where.Add("(run, name) > (@afterRun, @afterName)");
            parameters.Add(("afterRun", run));
            parameters.Add(("afterName", name));
        }
        parameters.Add(("limit", query.Limit));
        return new PostgresQuery(
            "SELECT id, campaign, run, stream, name, state, attempt, updated_at, failure FROM file_sagas"
            + (where.Count > 0 ? " WHERE " + string.Join(" AND ", where) : "")
            + " ORDER BY run, name LIMIT @limit",
            [.. parameters]);
    }

    public Task<IReadOnlyList<StateCount>> CountByStateAsync(CancellationToken cancellationToken) =>
        _database.RowsAsync("SELECT campaign, state, files FROM state_counts WHERE files > 0 ORDER BY campaign, state",
            r => new StateCount(r.GetString(0), r.GetString(1), r.Long(2)), cancellationToken);

    public async Task<IReadOnlyList<FailureGroup>> CountFailuresAsync(string? campaign, CancellationToken cancellationToken) =>
        FailureGroups.InTableOrder(await _database.RowsAsync(
            // Failed files are found on the state index; the classification lives in the saga document.
            $"""
            SELECT campaign,
                   COALESCE(document->>'failureStage', ''),
                   COALESCE(document->>'failureSignature', ''),
                   document->>'failureRelease',
                   COUNT(*), MAX(updated_at), COALESCE(MIN(failure), '')
            FROM file_sagas WHERE state = '{FileStates.Failed}' AND (@campaign::text IS NULL OR campaign = @campaign::text)
            GROUP BY 1, 2, 3, 4
            """,
            r => new FailureGroup(
                r.GetString(0),
                r.GetString(1) is { Length: > 0 } stage ? stage : FailureGroup.Unclassified,
                r.GetString(2) is { Length: > 0 } signature ? signature : FailureGroup.Unclassified,
                r.StringOrNull(3),
                r.Long(4),
                r.Time(5),
                r.GetString(6)),
            cancellationToken,
            ("campaign", campaign)));

    public async Task<IReadOnlyList<StalledFile>> FindStalledAsync(DateTimeOffset now, DateTimeOffset? updatedBefore, int limit, CancellationToken cancellationToken)
    {
        var stalled = new List<StalledFile>();
        foreach (var query in Stalled(now, updatedBefore, limit))
        {
            stalled.AddRange(await _database.RowsAsync(query,
                r => new StalledFile(r.GetGuid(0), r.GetInt32(1), r.GetString(2), r.GetString(3), r.GetInt32(4), r.GetString(5)), cancellationToken));
        }
        return [.. stalled.DistinctBy(f => f.Id).Take(limit)];
    }

    /// <summary>
    /// The watchdog's two sweeps, each walking its own index in order: files past their deadline (the partial index of
    /// files with one), and files not written since <paramref name="updatedBefore"/> (the partial index of files not final).
    /// </summary>
    public static IReadOnlyList<PostgresQuery> Stalled(DateTimeOffset now, DateTimeOffset? updatedBefore, int limit)
    {
        const string Columns = "id, version, state, campaign, run, stream";
        List<PostgresQuery> queries =
        [
            new($"SELECT {Columns} FROM file_sagas WHERE deadline < @now AND state NOT IN ({FinalStates}) ORDER BY deadline LIMIT @limit",
                ("now", Millis(now)), ("limit", limit)),
        ];
        if (updatedBefore is { } before)
        {
            queries.Add(new($"""
                SELECT {Columns} FROM file_sagas
                WHERE state NOT IN ({FinalStates}) AND updated_at < @before
                  -- A batch job outlives the transport's messages: its file waits for adoption or its deadline, not for recovery.
                  AND NOT (state = '{FileStates.Reconstructing}' AND COALESCE(document->'batchJob', 'null'::jsonb) <> 'null'::jsonb)
                ORDER BY updated_at LIMIT @limit
                """, ("before", Millis(before)), ("limit", limit)));
        }
        return queries;
    }
}
