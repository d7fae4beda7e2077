using System.Globalization;
using System.Text.Json;
using Pipeline.Faults;

// make load [LOAD_SECONDS=60 LOAD_CONNECTIONS=20 FILES=3000]: hey on the read endpoints while files flow; last line JSON.
// make soak [SOAK_MINUTES=30 SOAK_RUN_SECONDS=10 SOAK_RUN_FILES=40]: a run every few seconds; memory, descriptors, queues; last line JSON.
// make faults [FILES=1000 KILLS=20 BROKER_RESTARTS=2 DISK_ALARMS=1 SINGLETON_KILLS=1 SEED=1 FAULT_WINDOW_PERCENT=75]: the fault suite; its last stdout line is the report as JSON,
// with NETWORK=1 [LINK_CUTS=3 BROKER_PARTITIONS=1 STORAGE_RESTARTS=2] every service, the broker and a storage server on hosts of their own,
// with STORE=postgres [STORE_RESTARTS=1] the state on a PostgreSQL server of its own, stopped and started again mid-run,
// with BROKER_NODES=3 the broker a cluster of three nodes on hosts of their own with quorum queues, and it exits 0 only when nothing was lost, doubled, unexpected or orphaned and every file reached a final state.
int Number(string name, int fallback) =>
    Environment.GetEnvironmentVariable(name) is { Length: > 0 } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

// A singleton's holder as a process of its own, for the test that pauses it past its lease (see SingletonProbe).
if (args.FirstOrDefault() == "singleton-probe" && args.Length == 4)
{
    return await SingletonProbe.RunAsync(args[1], args[2], double.Parse(args[3], CultureInfo.InvariantCulture));
}
if (!FaultBroker.Installed)
{
    Console.Error.WriteLine($"faults: needs Debian's rabbitmq-server ({FaultBroker.ServerScript}) to run a broker of its own");
    return 2;
}
if (args.FirstOrDefault() == "load")
{
    if (!File.Exists(LoadRun.Hey))
    {
        Console.Error.WriteLine($"load: needs Debian's hey ({LoadRun.Hey})");
        return 2;
    }
    var load = await new LoadRun(TimeSpan.FromSeconds(Number("LOAD_SECONDS", 60)), Number("LOAD_CONNECTIONS", 20), Number("FILES", 3000), Number("BROKER_PORT", 5675), Console.Error)
        .RunAsync(CancellationToken.None);
    Console.WriteLine(JsonSerializer.Serialize(new { load.Seconds, load.Connections, load.FilesReconstructedDuring, load.Errors, load.WorstP95Ms, load.Endpoints, load.Passed }, new JsonSerializerOptions(JsonSerializerDefaults.Web)));
    return load.Passed ? 0 : 1;
}
if (args.FirstOrDefault() == "soak")
{
    var soak = await new SoakRun(TimeSpan.FromMinutes(Number("SOAK_MINUTES", 30)), TimeSpan.FromSeconds(Number("SOAK_RUN_SECONDS", 10)), Number("SOAK_RUN_FILES", 40),
        poisoned: 5, Number("BROKER_PORT", 5676), Console.Error).RunAsync(CancellationToken.None);
    foreach (var problem in soak.Problems)
    {
        Console.Error.WriteLine($"soak: {problem}");
    }
    Console.WriteLine(JsonSerializer.Serialize(new { soak.Minutes, soak.Runs, soak.Files, soak.NonFinal, soak.Poisoned, soak.MaxMemoryGrowthPercent, soak.MaxFileDescriptorGrowth,
        soak.QueuesDrained, soak.ErrorQueues, soak.AllowedGrowthPercent, soak.Processes, soak.Passed }, new JsonSerializerOptions(JsonSerializerDefaults.Web)));
    return soak.Passed ? 0 : 1;
}
var options = new FaultOptions(Files: Number("FILES", 1000), WorkerKills: Number("KILLS", 20), BrokerRestarts: Number("BROKER_RESTARTS", 2), DiskAlarms: Number("DISK_ALARMS", 1),
    SingletonKills: Number("SINGLETON_KILLS", 1), Seed: Number("SEED", 1), Network: Number("NETWORK", 0) == 1, LinkCuts: Number("LINK_CUTS", 3),
    BrokerPartitions: Number("BROKER_PARTITIONS", 1), StorageRestarts: Number("STORAGE_RESTARTS", 2), BrokerNodes: Number("BROKER_NODES", 1),
    FaultWindow: Number("FAULT_WINDOW_PERCENT", 75) / 100.0, Store: Environment.GetEnvironmentVariable("STORE") is { Length: > 0 } store ? store.ToLowerInvariant() : "sqlite",
    StoreRestarts: Number("STORE_RESTARTS", 1));
if (options.Store is not ("sqlite" or "postgres"))
{
    Console.Error.WriteLine($"faults: STORE={options.Store}: sqlite (the default) or postgres");
    return 2;
}
if ((options.Network || options.BrokerNodes > 1) && TestNetwork.Unavailable is { } reason)
{
    Console.Error.WriteLine($"faults: NETWORK=1 and BROKER_NODES put services and broker nodes on hosts of their own: {reason}");
    return 2;
}
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};
var report = await new FaultSuite(options, Console.Error).RunAsync(cancel.Token);
foreach (var problem in report.Problems)
{
    Console.Error.WriteLine($"faults: {problem}");
}
Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions(JsonSerializerDefaults.Web)));
return report.Passed ? 0 : 1;
