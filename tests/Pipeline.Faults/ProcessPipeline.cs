using System.Globalization;
using System.Text;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using RabbitMQ.Client;

namespace Pipeline.Faults;

/// <summary>
/// The pipeline as a production runs it: every service a process of its own, configured through its environment,
/// on a RabbitMQ node of its own and one shared store, with a working folder holding the areas and every log.
/// The fault suite, the load run and the soak run are built on it.
/// </summary>
public sealed class ProcessPipeline : IAsyncDisposable
{
    public static readonly (string Name, string Project)[] Services =
    [
        ("orchestrator", "Pipeline.Orchestrator"),
        // A second orchestrator: the sagas' messages are shared between the two, and the singletons (dispatcher,
        // feeder, watchdog) run on whichever holds their leases.
        ("orchestrator-2", "Pipeline.Orchestrator"),
        ("stager", "Pipeline.Stager"),
        ("reconstruction-1", "Pipeline.Reconstruction"),
        ("reconstruction-2", "Pipeline.Reconstruction"),
        ("collector", "Pipeline.Collector"),
        ("merger", "Pipeline.Merger"),
        ("archiver", "Pipeline.Archiver"),
        ("monitor", "Pipeline.Monitor"),
        ("api", "Pipeline.Api"),
    ];

    public string ViewerKey { get; } = "viewer-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    public string OperatorKey { get; } = "operator-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    public string Work { get; }

    public string Data => Path.Combine(Work, "data");

    public string Logs => Path.Combine(Work, "logs");

    /// <summary>The broker: its only node, or the first node of a cluster (where the run's announcements go).</summary>
    public FaultBroker Broker => BrokerNodes[0];

    /// <summary>Every node of the broker: one, or the nodes of a cluster the services know by <c>Pipeline:RabbitMq:ClusterNodes</c>.</summary>
    public IReadOnlyList<FaultBroker> BrokerNodes { get; private set; } = [];

    /// <summary>The storage server holding the areas, when they are on a host of the tests' network; null when they are folders here.</summary>
    public StorageServer? Storage { get; private set; }

    public IReadOnlyDictionary<string, ServiceProcess> Processes { get; private set; } = new Dictionary<string, ServiceProcess>();

    /// <summary>The PostgreSQL server holding the state, when the run's store is one; null when it is the SQLite file in the data folder.</summary>
    public StateServer? State { get; private set; }

    /// <summary>The store the services share, as the checker reads it.</summary>
    public StoreBackend OpenStore() => State?.Open() ?? StoreBackend.Sqlite(Path.Combine(Data, "pipeline.db"));

    public ServiceProcess this[string name] => Processes[name];

    private ProcessPipeline(string work) => Work = work;

    /// <summary>A job that outlasts the broker's consumer timeout: the file of this run and section sleeps this long.</summary>
    public sealed record SlowJob(int Run, int Section, TimeSpan Sleep);

    /// <summary>The broker's consumer timeout in these runs: low, so that a slow job outlasts it.</summary>
    public static readonly TimeSpan ConsumerTimeout = TimeSpan.FromSeconds(20);

    /// <summary>The reconstruction lease on hosts with disks of their own (10 s otherwise).</summary>
    public const int LongLeaseSeconds = 30;

    /// <summary>
    /// Starts the broker, then every service (each ready before the next starts); <paramref name="once"/> gives settings for a
    /// service's first life, <paramref name="serviceSettings"/> settings for all its lives.
    /// </summary>
    /// <param name="network">
    /// Services placed on hosts of the tests' network (network namespaces), and the broker and the areas' storage
    /// server when it gives them hosts; the services not named stay on this machine. <paramref name="services"/>
    /// replaces the usual set of services when given.
    /// </param>
    public static async Task<ProcessPipeline> StartAsync(string? work, int brokerPort, TextWriter log, Func<string, IReadOnlyDictionary<string, string>?> once,
        int releaseSleepMsMax, CancellationToken cancellationToken, SlowJob? slowJob = null, IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>>? serviceSettings = null,
        IReadOnlyList<(string Name, string Project)>? services = null, NetworkPlacement? network = null, int releaseSleepMs = 0, bool postgres = false)
    {
        var pipeline = new ProcessPipeline(work ?? Path.Combine(Path.GetTempPath(), $"pipeline-faults-{Guid.NewGuid():N}"[..30]));
        Directory.CreateDirectory(pipeline.Data);
        Directory.CreateDirectory(pipeline.Logs);
        log.WriteLine($"faults: working in {pipeline.Work}");
        try
        {
            var brokerHosts = network?.Brokers ?? [];
            pipeline.BrokerNodes = brokerHosts.Count > 1
                ? await FaultBroker.StartClusterAsync(Path.Combine(pipeline.Work, "broker"), brokerPort, ConsumerTimeout, brokerHosts, cancellationToken)
                : [await FaultBroker.StartAsync(Path.Combine(pipeline.Work, "broker"), brokerPort, ConsumerTimeout, cancellationToken,
                    brokerHosts.Count == 0 ? network?.BridgeAddress : null, brokerHosts.FirstOrDefault())];
            var environment = pipeline.Environment(pipeline.Broker.Uri, pipeline.Data, releaseSleepMsMax, slowJob, releaseSleepMs);
            if (network is { PrivateDisks: true })
            {
                // With disks of their own the jobs take longer (their bytes go through the storage server on a saturated
                // machine), and a worker's lease outlasts the short outages the suite makes (a broker node restarted, the
                // store stopped for 10 s): with 10 s, each of them took the 80 s job's lease, which then started again
                // from nothing, until a quiet 80 s came (9 minutes into a 200-file run, every merge of its run waiting on
                // it). A killed worker's file, or a cut host's (its link stays cut longer than this), waits this long.
                environment["Pipeline__Orchestrator__LeaseSeconds"] = LongLeaseSeconds.ToString(CultureInfo.InvariantCulture);
            }
            if (pipeline.BrokerNodes.Count > 1)
            {
                // A cluster: every queue replicated on its nodes, and every service able to move to another node.
                environment["Pipeline__RabbitMq__QuorumQueues"] = "true";
                for (var i = 0; i < pipeline.BrokerNodes.Count; i++)
                {
                    environment[$"Pipeline__RabbitMq__ClusterNodes__{i.ToString(CultureInfo.InvariantCulture)}"] = pipeline.BrokerNodes[i].Address;
                }
            }
            if (postgres)
            {
                // The state on a PostgreSQL server of its own, where every service reaches it: nothing shared on disk.
                pipeline.State = await StateServer.StartAsync(Path.Combine(pipeline.Work, "state-server"), network?.BridgeAddress ?? "127.0.0.1", cancellationToken, network?.State);
                foreach (var (key, value) in pipeline.State.Settings)
                {
                    environment[key] = value;
                }
            }
            if (network?.Storage is { } storageHost)
            {
                // The server serves the data folder: the areas in it are open to the server's own user, and the services
                // reach them only through it.
                foreach (var area in StorageOptions.KnownAreas.Where(a => a != StorageOptions.Scratch).Concat(network.ExtraAreas ?? []))
                {
                    var folder = Directory.CreateDirectory(Path.Combine(pipeline.Data, area));
                    if (!OperatingSystem.IsWindows())
                    {
                        folder.UnixFileMode = (UnixFileMode)0x1FF;
                    }
                }
                pipeline.Storage = await StorageServer.StartAsync(pipeline.Work, storageHost, cancellationToken);
                foreach (var (key, value) in pipeline.Storage.AreaSettings([StorageOptions.Archive, .. network.ExtraAreas ?? []]))
                {
                    environment[key] = value;
                }
            }
            if (network is { PrivateDisks: true } && !postgres)
            {
                throw new ArgumentException("Hosts with disks of their own need the state on a PostgreSQL server: a SQLite file would be one per host.");
            }
            // Seen by no process on a host with a disk of its own: the check that the hosts' disks are private.
            await File.WriteAllTextAsync(Path.Combine(pipeline.Data, SharedMarker), "the shared data folder\n", cancellationToken);
            pipeline.Processes = (services ?? Services).ToDictionary(s => s.Name, s =>
            {
                var host = network?.Hosts.GetValueOrDefault(s.Name);
                // A service's own settings win over the common ones.
                var settings = new Dictionary<string, string>(environment);
                foreach (var (key, value) in serviceSettings?.GetValueOrDefault(s.Name) ?? new Dictionary<string, string>())
                {
                    settings[key] = value;
                }
                if (host is not null && pipeline.Broker.Host is null)
                {
                    settings["Pipeline__RabbitMq__Uri"] = pipeline.Broker.UriAt(network!.BridgeAddress).ToString();
                }
                return new ServiceProcess(s.Name, ServiceDll(s.Project), settings, pipeline.Logs, host,
                    host is not null && network!.PrivateDisks ? pipeline.PrivateDiskOf(host) : null);
            }, StringComparer.Ordinal);
            foreach (var process in pipeline.Processes.Values)
            {
                await process.StartAsync(cancellationToken, once(process.Name));
            }
        }
        catch
        {
            // A service that would not start leaves the others running: stop them all, keep the folder to look at.
            pipeline.KeepWork = true;
            await pipeline.DisposeAsync();
            throw;
        }
        log.WriteLine($"faults: {pipeline.Processes.Count} services running");
        return pipeline;
    }

    /// <summary>A client of the API process, sending the given key.</summary>
    public HttpClient Api(string key)
    {
        var client = new HttpClient { BaseAddress = new Uri($"http://{this["api"].Address}:{this["api"].Port.ToString(CultureInfo.InvariantCulture)}") };
        client.DefaultRequestHeaders.Add("X-Api-Key", key);
        return client;
    }

    public async Task StopAllAsync()
    {
        foreach (var process in Processes.Values)
        {
            await process.StopAsync(TimeSpan.FromSeconds(20));
        }
    }

    /// <summary>Keep the working folder (areas, store, every log) after the run: set when a run fails, for its diagnosis.</summary>
    public bool KeepWork { get; set; }

    public async ValueTask DisposeAsync()
    {
        foreach (var process in Processes.Values)
        {
            await process.DisposeAsync();
        }
        foreach (var node in BrokerNodes)
        {
            await node.DisposeAsync();
        }
        if (Storage is not null)
        {
            await Storage.DisposeAsync();
        }
        if (State is not null)
        {
            await State.DisposeAsync();
        }
        if (!KeepWork && Directory.Exists(Work))
        {
            Directory.Delete(Work, recursive: true);
        }
    }

    /// <summary>Sample runs of exactly <paramref name="files"/> files in two streams, up to 50 a stream per run (a thousand files are ten runs).</summary>
    public async Task<IReadOnlyList<RunRecorded>> GenerateAsync(int files, int seed, int firstRun = 1000)
    {
        var perStream = Math.Min(50, Math.Max(1, files / 4));
        var runs = Math.Max(1, (int)Math.Ceiling(files / (2.0 * perStream)));
        var generated = await SampleGenerator.GenerateAsync(Path.Combine(Data, StorageOptions.Archive),
            new SampleSpec(Runs: runs, FirstRun: firstRun, FilesPerStream: perStream, EventsPerFile: 20, PayloadBytes: 64, Seed: seed));
        // Exactly the number asked for: the last run keeps what is left.
        var left = files;
        var trimmed = new List<RunRecorded>();
        foreach (var run in generated)
        {
            var take = Math.Min(left, run.Files!.Count);
            if (take > 0)
            {
                trimmed.Add(run with { Files = [.. run.Files.Take(take)] });
            }
            left -= take;
        }
        return trimmed;
    }

    private Dictionary<string, string> Environment(Uri broker, string data, int releaseSleepMsMax, SlowJob? slowJob, int releaseSleepMs)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["Pipeline__Transport"] = "RabbitMq",
            ["Pipeline__RabbitMq__Uri"] = broker.ToString(),
            ["Pipeline__DataDirectory"] = data,
            ["Pipeline__HeartbeatSeconds"] = "2",
            ["Pipeline__Campaign__MergeTargetBytes"] = (256 << 10).ToString(CultureInfo.InvariantCulture),
            // Short patience everywhere, so that what a killed process left is picked up within the run.
            ["Pipeline__Orchestrator__WatchdogIntervalSeconds"] = "1",
            ["Pipeline__Orchestrator__StagingTimeoutSeconds"] = "20",
            ["Pipeline__Orchestrator__QueuedTimeoutSeconds"] = "60",
            ["Pipeline__Orchestrator__LeaseSeconds"] = "10",
            ["Pipeline__Orchestrator__MergeTimeoutSeconds"] = "30",
            ["Pipeline__Orchestrator__MaxStalls"] = "100",
            ["Pipeline__Reconstruction__Slots"] = "2",
            ["Pipeline__Reconstruction__HeartbeatSeconds"] = "2",
            ["Pipeline__Merger__FlushIdleSeconds"] = "1",
            ["Pipeline__Merger__PollSeconds"] = "0.2",
            ["Pipeline__Monitor__AbandonedTemporarySeconds"] = "5",
            ["Pipeline__Monitor__TemporarySweepSeconds"] = "1",
            // Storage servers' areas too, every few seconds (hourly by default): a server killed mid-upload keeps the
            // upload's temporary file, whose removal failed with the server down.
            ["Pipeline__Monitor__RemoteTemporarySweepSeconds"] = "3",
            ["Pipeline__Collector__LeftoverAfterSeconds"] = "5",
            ["Pipeline__Collector__LeftoverSweepSeconds"] = "2",
            ["Pipeline__Monitor__CheckIntervalSeconds"] = "2",
            ["Serilog__MinimumLevel__Default"] = "Information",
            // The API's keys: used while the files flow, and looked for in every log afterwards.
            ["Pipeline__Api__Keys__faults-viewer__Key"] = ViewerKey,
            ["Pipeline__Api__Keys__faults-viewer__Role"] = "viewer",
            ["Pipeline__Api__Keys__faults-operator__Key"] = OperatorKey,
            ["Pipeline__Api__Keys__faults-operator__Role"] = "operator",
        };
        // The sample release, sleeping a random time before writing its (deterministic) output.
        var arguments = ReleaseOptions.SampleArguments.Concat(["--sleep-ms-max", releaseSleepMsMax.ToString(CultureInfo.InvariantCulture), "--section", "{section}"]).ToList();
        if (releaseSleepMs > 0)
        {
            arguments.AddRange(["--sleep-ms", releaseSleepMs.ToString(CultureInfo.InvariantCulture)]);
        }
        if (slowJob is not null)
        {
            arguments.AddRange(["--slow-run", slowJob.Run.ToString(CultureInfo.InvariantCulture), "--slow-section", slowJob.Section.ToString(CultureInfo.InvariantCulture),
                "--slow-ms", ((long)slowJob.Sleep.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)]);
        }
        for (var i = 0; i < arguments.Count; i++)
        {
            environment[$"Pipeline__Campaign__Release__Arguments__{i.ToString(CultureInfo.InvariantCulture)}"] = arguments[i];
        }
        return environment;
    }

    public async Task AnnounceAsync(IReadOnlyList<RunRecorded> runs, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = Broker.Uri };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        var json = new JsonSerializerOptions(JsonSerializerDefaults.Web);
        foreach (var run in runs)
        {
            // As the data-acquisition system does: plain JSON on the run-events exchange, persistent, confirmed.
            await channel.BasicPublishAsync("run-events", "", mandatory: true,
                new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent },
                Encoding.UTF8.GetBytes(JsonSerializer.Serialize(run, json)), cancellationToken);
        }
    }

    /// <summary>Every log line of every service that shows a secret: the broker's password or an API key.</summary>
    public async Task<IReadOnlyList<string>> SecretsInLogsAsync(CancellationToken cancellationToken)
    {
        var leaks = new List<string>();
        IReadOnlyList<string> secrets = [Broker.Password, ViewerKey, OperatorKey];
        foreach (var file in Directory.EnumerateFiles(Logs, "*.log"))
        {
            var number = 0;
            await foreach (var line in File.ReadLinesAsync(file, cancellationToken))
            {
                number++;
                if (secrets.Any(secret => line.Contains(secret, StringComparison.Ordinal)))
                {
                    leaks.Add($"secret in log {Path.GetFileName(file)} line {number}");
                }
            }
        }
        return leaks;
    }

    /// <summary>Files in a final state, and how far the files are on average (in files: the total when all are final).</summary>
    public static async Task<(int Final, double Progress)> ProgressAsync(IFileSagaStore store, CancellationToken cancellationToken)
    {
        var counts = await store.CountByStateAsync(cancellationToken);
        var final = (int)counts.Where(c => FileStates.Final.Contains(c.State)).Sum(c => c.Files);
        var reconstructed = counts.Where(c => FileStates.PastReconstruction.Contains(c.State)).Sum(c => c.Files);
        return (final, (final + reconstructed) / 2.0);
    }

    private const string SharedMarker = ".disk-shared";

    /// <summary>The folders the hosts' disks of their own are in, one per host: <c>WORK/hosts/HOST</c>.</summary>
    public string HostDisks => Path.Combine(Work, "hosts");

    private PrivateDisk PrivateDiskOf(NetworkHost host)
    {
        var folder = Directory.CreateDirectory(Path.Combine(HostDisks, host.Name));
        File.WriteAllText(Path.Combine(folder.FullName, PrivateDisk.MarkerOf(host.Name)), $"the disk of {host.Name}\n");
        return new PrivateDisk(folder.FullName, Data);
    }

    /// <summary>
    /// Whether every running process on a host with a disk of its own sees that disk, and only it, in place of the data
    /// folder: its host's marker there, no other host's, and not the shared folder's (looked at through
    /// <c>/proc/PID/root</c>, the process's own view of the filesystem). False when no process has such a disk.
    /// </summary>
    public bool PrivateDisksChecked(TextWriter log)
    {
        var checkedAny = false;
        foreach (var process in Processes.Values.Where(p => p.PrivateDisk is not null && p.Host is not null))
        {
            var pid = process.ProcessId;
            if (pid == 0)
            {
                continue;
            }
            var seen = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/root{Data}";
            var markers = Directory.Exists(seen) ? Directory.EnumerateFiles(seen, ".disk-*").Select(Path.GetFileName).OfType<string>().ToList() : [];
            if (markers.Count != 1 || markers[0] != PrivateDisk.MarkerOf(process.Host!.Name))
            {
                log.WriteLine($"faults: {process.Name} on {process.Host!.Name} sees {string.Join(", ", markers)} in {Data}, not its host's disk alone");
                return false;
            }
            checkedAny = true;
        }
        return checkedAny;
    }

    /// <summary>
    /// Files that nothing will ever pick up once every file is final: temporary files of writes that died (after the
    /// sweeper has had its chance), staged copies left in the cache, job folders left in scratch, reconstruction outputs left in the unmerged area,
    /// merged files never archived out of the output area.
    /// </summary>
    public async Task<IReadOnlyList<string>> OrphansAsync(bool allFinal, CancellationToken cancellationToken)
    {
        List<string> Find() =>
        [
            .. Directory.EnumerateFiles(Data, "*" + StorageArea.TemporaryMarker + "*", SearchOption.AllDirectories),
            .. Enumerate(Path.Combine(Data, StorageOptions.Cache)),
            .. Enumerate(Path.Combine(Data, StorageOptions.Scratch)),
            .. Enumerate(Path.Combine(Data, StorageOptions.Unmerged)),
            .. Enumerate(Path.Combine(Data, StorageOptions.Output)),
            // What the hosts' services left on their own disks (a job folder, a spooled upload).
            .. (Directory.Exists(HostDisks) ? Directory.EnumerateFiles(HostDisks, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith(".disk-", StringComparison.Ordinal)) : []),
        ];
        // The sweeps clear what the faults left once the files are final; through a storage server that is a process per
        // file or folder removed (the folders of every final file's jobs go too, and the files left over may come after
        // many emptied folders). So the wait goes on while the leftovers or the unmerged area's folders keep shrinking,
        // up to 60 s without progress and 5 minutes in all.
        var unmerged = Path.Combine(Data, StorageOptions.Unmerged);
        int Folders() => Directory.Exists(unmerged) ? Directory.EnumerateDirectories(unmerged, "*", SearchOption.AllDirectories).Count() : 0;
        var patience = TimeSpan.FromSeconds(60);
        var limit = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        var deadline = DateTime.UtcNow + patience;
        var found = Find();
        var folders = Folders();
        while (allFinal && found.Count > 0 && DateTime.UtcNow < deadline && DateTime.UtcNow < limit)
        {
            await Task.Delay(500, cancellationToken);
            var (filesBefore, foldersBefore) = (found.Count, folders);
            (found, folders) = (Find(), Folders());
            if (found.Count < filesBefore || folders < foldersBefore)
            {
                deadline = DateTime.UtcNow + patience;
            }
        }
        return found;
    }

    private static IEnumerable<string> Enumerate(string folder) =>
        Directory.Exists(folder) ? Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories) : [];

    /// <summary>The repository this program was built in: the folder above it holding Pipeline.sln.</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var at = new DirectoryInfo(AppContext.BaseDirectory); at is not null; at = at.Parent)
            {
                if (File.Exists(Path.Combine(at.FullName, "Pipeline.sln")))
                {
                    return at.FullName;
                }
            }
            throw new InvalidOperationException($"no Pipeline.sln above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>A service's program as built beside this one (same configuration).</summary>
    private static string ServiceDll(string project)
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent?.Name ?? "Release";
        var dll = Path.Combine(RepositoryRoot, "services", project, "bin", configuration, "net10.0", project + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is not built: run `dotnet build Pipeline.sln -c {configuration}` first", dll);
    }
}

/// <summary>
/// Which services run on which host of the tests' network, and this machine's address on its bridge; the broker's
/// host (several: a cluster, a node on each), and the host of a storage server holding every area but scratch (with
/// <paramref name="ExtraAreas"/>, served over root:// beside the archive), when they are not on this machine.
/// </summary>
/// <param name="PrivateDisks">
/// Each host's services see a folder of the host's own in place of the data folder (a mount namespace per process,
/// tests/network/private-disk.sh): nothing one host writes reaches another but through the broker, the store or the
/// storage server. It needs the state on a server (PostgreSQL): a SQLite file would be one per host.
/// </param>
/// <param name="State">The host the PostgreSQL server runs on, when the state is on one; null for the bridge address.</param>
public sealed record NetworkPlacement(string BridgeAddress, IReadOnlyDictionary<string, NetworkHost> Hosts, IReadOnlyList<NetworkHost>? Brokers = null, NetworkHost? Storage = null,
    IReadOnlyList<string>? ExtraAreas = null, bool PrivateDisks = false, NetworkHost? State = null);

