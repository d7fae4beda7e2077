using System.Diagnostics;
using Pipeline.Production.State;

namespace Pipeline.Benchmarks;

/// <summary>The embedded store filled with a million file sagas: filtered, paged listing and the summary query.</summary>
public static class StateBenchmark
{
    private static readonly string[] States = ["Registered", "Staging", "Staged", "Reconstructing", "Reconstructed", "Merged", "Archived", "Failed"];
    private static readonly string[] Campaigns = ["prompt", "reprocess-2026a", "reprocess-2026b", "mc-2026"];
    private static readonly string[] Streams = ["physics", "express", "calibration"];

    /// <summary>
    /// SQLite and PostgreSQL (a server of its own, tests/postgres/local-server.sh) always; MongoDB too where
    /// <c>MONGODB_URI</c> names a server (in a database of its own, dropped after).
    /// </summary>
    public static async Task<object> RunAsync(string workDirectory, int records, string? mongoUri)
    {
        var sqlite = await MeasureAsync(StoreBackend.Sqlite(Path.Combine(workDirectory, "state-bench.db")).Sagas, records);
        var postgres = await MeasurePostgresAsync(workDirectory, records);
        var mongo = mongoUri is null ? new { skipped = "MONGODB_URI is not set" } : await MeasureMongoAsync(mongoUri, records);
        return new { sqlite.records, sqlite.listP95Ms, sqlite.listP50Ms, sqlite.summaryMs, sqlite.loadSeconds, postgres, mongo };
    }

    private const string PostgresScript = "tests/postgres/local-server.sh";

    /// <summary>The PostgreSQL figures, on a server started for them on loopback and stopped after.</summary>
    private static async Task<object> MeasurePostgresAsync(string workDirectory, int records)
    {
        var server = Path.Combine(workDirectory, "state-server");
        await StorageBenchmark.RunAsync("bash", [PostgresScript, "start", server]);
        try
        {
            var settings = File.ReadAllLines(Path.Combine(server, "server.env")).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
            using var store = StoreBackend.Postgres(PostgresConnection.Open(new Pipeline.Infrastructure.Hosting.PostgresOptions
            {
                ConnectionString = settings["CONNECTION"],
                PasswordFile = settings["PASSWORD_FILE"],
            }));
            return await MeasureAsync(store.Sagas, records);
        }
        finally
        {
            await StorageBenchmark.RunAsync("bash", [PostgresScript, "stop", server]);
        }
    }

    /// <summary>The MongoDB figures, or why there are none: the rest of the report still counts without them.</summary>
    private static async Task<object> MeasureMongoAsync(string mongoUri, int records)
    {
        MongoStoreContext store;
        try
        {
            store = await MongoStoreContext.ConnectAsync(mongoUri, "pipeline-bench-" + Guid.NewGuid().ToString("N")[..8], CancellationToken.None);
        }
        catch (Exception ex) when (ex is TimeoutException or MongoDB.Driver.MongoException)
        {
            return new { skipped = $"MONGODB_URI names no reachable server: {ex.Message.Split('\n')[0]}" };
        }
        try
        {
            return await MeasureAsync(StoreBackend.Mongo(store).Sagas, records);
        }
        finally
        {
            await store.DropAsync(CancellationToken.None);
        }
    }

    // Named as the report's fields.
    private sealed record Figures(int records, double listP95Ms, double listP50Ms, double summaryMs, double loadSeconds);

    private static async Task<Figures> MeasureAsync(IFileSagaStore store, int records)
    {
        var load = Stopwatch.StartNew();
        const int batch = 50_000;
        for (var start = 0; start < records; start += batch)
        {
            await store.BulkInsertAsync(Enumerable.Range(start, Math.Min(batch, records - start)).Select(Saga), CancellationToken.None);
        }
        var loadSeconds = load.Elapsed.TotalSeconds;

        var random = new Random(11);
        var queries = new List<double>();
        for (var i = 0; i < 300; i++)
        {
            var runFrom = random.Next(1, 10_000);
            var query = (i % 4) switch
            {
                0 => new FileQuery(State: States[random.Next(States.Length)], Limit: 100),
                1 => new FileQuery(Campaign: Campaigns[random.Next(Campaigns.Length)], State: States[random.Next(States.Length)], Limit: 100),
                2 => new FileQuery(RunFrom: runFrom, RunTo: runFrom + 50, Limit: 100),
                _ => new FileQuery(Campaign: Campaigns[random.Next(Campaigns.Length)], Stream: Streams[random.Next(Streams.Length)], RunFrom: runFrom, Limit: 100),
            };
            var watch = Stopwatch.StartNew();
            var page = await store.ListAsync(query, CancellationToken.None);
            if (page.Next is not null && i % 2 == 0)
            {
                // And the page after it, through the cursor.
                await store.ListAsync(query with { After = page.Next }, CancellationToken.None);
            }
            queries.Add(watch.Elapsed.TotalMilliseconds);
        }

        var summaries = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            var watch = Stopwatch.StartNew();
            await store.CountByStateAsync(CancellationToken.None);
            summaries.Add(watch.Elapsed.TotalMilliseconds);
        }
        var sorted = queries.Order().ToList();
        return new Figures(
            records,
            listP95Ms: Math.Round(sorted[(int)Math.Ceiling(0.95 * sorted.Count) - 1], 1),
            listP50Ms: Math.Round(sorted[sorted.Count / 2], 1),
            summaryMs: Math.Round(summaries.Order().ElementAt(summaries.Count / 2), 1),
            loadSeconds: Math.Round(loadSeconds, 1));
    }

    private static FileState Saga(int i)
    {
        var run = 1 + i / 100;
        var stream = Streams[i % Streams.Length];
        var saga = new FileState
        {
            CorrelationId = Guid.NewGuid(),
            CurrentState = States[i * 7 % States.Length],
            Campaign = Campaigns[i / 3 % Campaigns.Length],
            Run = run,
            Stream = stream,
            Section = i % 100,
            LogicalName = $"raw/run{run:D6}/{stream}/run{run:D6}_{stream}_{i % 100:D4}.raw",
            Size = 1_000_000_000,
            Adler32 = "0a0b0c0d",
            Events = 100_000,
            Attempt = 1,
            UpdatedAt = DateTimeOffset.UnixEpoch.AddSeconds(i),
        };
        saga.Record(saga.UpdatedAt, "Registered", "FileRegistered", "registered");
        saga.Record(saga.UpdatedAt, "Staging", "FileRegistered", null);
        return saga;
    }
}
