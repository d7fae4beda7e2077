using System.Diagnostics;
using System.Globalization;
using Pipeline.Faults;
using Pipeline.Production.State;

namespace Pipeline.Benchmarks;

/// <summary>
/// How reconstruction scales with worker hosts: 1, 2 and 4 hosts (network namespaces on a bridge of their own, each
/// reaching the broker only over it), each one worker with the same slots, and jobs that sleep a fixed time so that
/// the machine's cores are not the limit. For each: files per second from the first claim to the last
/// reconstruction, and efficiency = files/s ÷ (hosts × slots ÷ job seconds). Nothing is shared between the hosts but the
/// network: each worker host has a disk of its own, every area but scratch is on an XRootD server on a host of its own,
/// and the state on a PostgreSQL server on another. The rest of the pipeline runs on this machine, every service a
/// process of its own, on a RabbitMQ node of its own.
/// </summary>
public static class ScaleOutBenchmark
{
    public static async Task<object> RunAsync(int slots, int jobSeconds, int waves, IReadOnlyList<int> hostCounts)
    {
        if (!FaultBroker.Installed)
        {
            return new { skipped = $"needs Debian's rabbitmq-server ({FaultBroker.ServerScript})" };
        }
        if (TestNetwork.Unavailable is { } reason)
        {
            return new { skipped = reason };
        }
        var points = new List<ScalePoint>();
        foreach (var hosts in hostCounts)
        {
            points.Add(await PointAsync(hosts, slots, jobSeconds, waves));
            Console.Error.WriteLine($"bench: scaleOut with {hosts} hosts: {points[^1]}");
        }
        return new { store = "postgres", privateDisks = true, storage = "root://", slots, jobSeconds, waves, points, target = 0.9 };
    }

    private const string StorageHost = "st";
    private const string StateHost = "db";

    private static async Task<ScalePoint> PointAsync(int hosts, int slots, int jobSeconds, int waves)
    {
        var names = Enumerable.Range(1, hosts).Select(i => $"w{i.ToString(CultureInfo.InvariantCulture)}").ToList();
        await using var placed = await TestNetwork.UpAsync([.. names, StorageHost, StateHost], CancellationToken.None);
        var workers = names.Select(n => $"reconstruction-{n}").ToList();
        (string, string)[] services =
        [
            ("orchestrator", "Pipeline.Orchestrator"), ("stager", "Pipeline.Stager"), ("collector", "Pipeline.Collector"),
            // The monitor records the workers' heartbeats, whose slots the dispatcher counts.
            ("merger", "Pipeline.Merger"), ("archiver", "Pipeline.Archiver"), ("monitor", "Pipeline.Monitor"), .. workers.Select(w => (w, "Pipeline.Reconstruction")),
        ];
        var network = new NetworkPlacement(placed.BridgeAddress, names.ToDictionary(n => $"reconstruction-{n}", n => placed[n]),
            Storage: placed[StorageHost], PrivateDisks: true, State: placed[StateHost]);
        var settings = workers.ToDictionary(w => w, _ => (IReadOnlyDictionary<string, string>)new Dictionary<string, string>
        {
            ["Pipeline__Reconstruction__Slots"] = slots.ToString(CultureInfo.InvariantCulture),
            ["Serilog__MinimumLevel__Default"] = "Warning",
        });
        await using var pipeline = await ProcessPipeline.StartAsync(null, 5703, Console.Error, _ => null, releaseSleepMsMax: 0, CancellationToken.None,
            serviceSettings: settings, services: services, network: network, releaseSleepMs: jobSeconds * 1000, postgres: true);
        if (!pipeline.PrivateDisksChecked(Console.Error))
        {
            throw new InvalidOperationException($"scaleOut with {hosts} hosts: a worker host's disk was not its own");
        }
        var files = hosts * slots * waves;
        var runs = await pipeline.GenerateAsync(files, seed: 5);
        await pipeline.AnnounceAsync(runs, CancellationToken.None);
        using var store = pipeline.OpenStore();
        var deadline = Stopwatch.StartNew();
        while ((await ProcessPipeline.ProgressAsync(store.Sagas, CancellationToken.None)).Final < files)
        {
            if (deadline.Elapsed > TimeSpan.FromSeconds(120 + (4.0 * waves * jobSeconds)))
            {
                throw new TimeoutException($"scaleOut with {hosts} hosts: not every file final in time");
            }
            await Task.Delay(500);
        }
        var (first, last) = (DateTimeOffset.MaxValue, DateTimeOffset.MinValue);
        var page = await store.Sagas.ListAsync(new FileQuery(Campaign: "prompt", Limit: 10_000), CancellationToken.None);
        foreach (var summary in page.Files)
        {
            var saga = (await store.Sagas.LoadAsync(summary.Id, CancellationToken.None))!;
            foreach (var entry in saga.History)
            {
                if (entry.State == FileStates.Reconstructing && entry.At < first)
                {
                    first = entry.At;
                }
                if (entry.State == FileStates.Reconstructed && entry.At > last)
                {
                    last = entry.At;
                }
            }
        }
        var seconds = (last - first).TotalSeconds;
        var rate = files / seconds;
        var ideal = hosts * slots / (double)jobSeconds;
        return new ScalePoint(hosts, files, Math.Round(seconds, 1), Math.Round(rate, 3), Math.Round(ideal, 3), Math.Round(rate / ideal, 3));
    }

    /// <summary>One point of the curve.</summary>
    public sealed record ScalePoint(int Hosts, int Files, double Seconds, double FilesPerSecond, double IdealFilesPerSecond, double Efficiency);
}
