using System.Diagnostics;
using System.Globalization;
using Pipeline.Faults;
using Pipeline.Production.State;

namespace Pipeline.Benchmarks;

/// <summary>
/// The orchestration rate with two orchestrator instances against one: files per second from their announcement to
/// the last one archived, every service a process of its own on a RabbitMQ node of its own, jobs that do no more
/// than the sample release's own work. The two share the sagas' messages and race on the store; the singletons
/// (dispatcher, feeder, watchdog) run on one of them.
/// </summary>
public static class OrchestratorsBenchmark
{
    public static async Task<object> RunAsync(int files)
    {
        if (!FaultBroker.Installed)
        {
            return new { skipped = $"needs Debian's rabbitmq-server ({FaultBroker.ServerScript})" };
        }
        var one = await RateAsync(1, files);
        Console.Error.WriteLine($"bench: orchestrators: {one}");
        var two = await RateAsync(2, files);
        Console.Error.WriteLine($"bench: orchestrators: {two}");
        return new { files, one, two, ratio = Math.Round(two.FilesPerSecond / one.FilesPerSecond, 3) };
    }

    private static async Task<RatePoint> RateAsync(int orchestrators, int files)
    {
        (string Name, string Project)[] services =
        [
            .. Enumerable.Range(1, orchestrators).Select(i => (i == 1 ? "orchestrator" : $"orchestrator-{i.ToString(CultureInfo.InvariantCulture)}", "Pipeline.Orchestrator")),
            ("stager", "Pipeline.Stager"), ("reconstruction-1", "Pipeline.Reconstruction"), ("reconstruction-2", "Pipeline.Reconstruction"),
            ("collector", "Pipeline.Collector"), ("merger", "Pipeline.Merger"), ("archiver", "Pipeline.Archiver"),
            // The monitor records the workers' heartbeats, whose slots the dispatcher counts.
            ("monitor", "Pipeline.Monitor"),
        ];
        var settings = services.ToDictionary(s => s.Name, s => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>
        {
            ["Serilog__MinimumLevel__Default"] = "Warning",
            ["Pipeline__Reconstruction__Slots"] = "8",
        });
        await using var pipeline = await ProcessPipeline.StartAsync(null, 5704, Console.Error, _ => null, releaseSleepMsMax: 0, CancellationToken.None,
            serviceSettings: settings, services: services);
        var runs = await pipeline.GenerateAsync(files, seed: 9);
        using var store = StoreBackend.Sqlite(Path.Combine(pipeline.Data, "pipeline.db"));
        var watch = Stopwatch.StartNew();
        await pipeline.AnnounceAsync(runs, CancellationToken.None);
        while ((await ProcessPipeline.ProgressAsync(store.Sagas, CancellationToken.None)).Final < files)
        {
            if (watch.Elapsed > TimeSpan.FromMinutes(10))
            {
                throw new TimeoutException($"orchestrators: with {orchestrators}, not every file final within 10 minutes");
            }
            await Task.Delay(200);
        }
        var seconds = watch.Elapsed.TotalSeconds;
        return new RatePoint(orchestrators, files, Math.Round(seconds, 1), Math.Round(files / seconds, 2));
    }

    public sealed record RatePoint(int Orchestrators, int Files, double Seconds, double FilesPerSecond);
}
