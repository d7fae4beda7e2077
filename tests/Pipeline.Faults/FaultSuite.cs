using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Host;
using Pipeline.Infrastructure.Faults;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Faults;

/// <summary>What one fault run is made of.</summary>
/// <param name="FaultWindow">The faults are spread over this fraction of the run's progress: a short run wants them early, as each takes seconds while its files move on.</param>
public sealed record FaultOptions(
    int Files = 1000,
    int WorkerKills = 20,
    int BrokerRestarts = 2,
    int DiskAlarms = 1,
    int SingletonKills = 1,
    bool CrashOrchestrator = true,
    int Seed = 1,
    int BrokerPort = 5673,
    bool SlowJobs = true,
    int CorruptStagedEvery = 20,
    int CorruptMergedEvery = 4,
    double FaultWindow = 0.75,
    TimeSpan? FinalWithin = null,
    string? WorkDirectory = null,
    bool Network = false,
    int LinkCuts = 0,
    int BrokerPartitions = 0,
    int StorageRestarts = 0,
    int BrokerNodes = 1,
    string Store = "sqlite",
    int StoreRestarts = 0);

/// <summary>What the checker found, from the catalog and the archived bytes alone. Its JSON is `make faults`' last line.</summary>
public sealed record FaultReport(
    int Files,
    int Kills,
    int BrokerRestarts,
    int DiskAlarms,
    long Lost,
    long Duplicated,
    long Unexpected,
    int Orphans,
    int NonFinal,
    int CorruptionsInjected,
    int CorruptionsCaught,
    int CorruptionsReplaced,
    int MergedCorruptionsInjected,
    int MergedCorruptionsCaught,
    int MergedFilesRemade,
    int FailedFiles,
    int ChecksumsBad,
    bool CatalogAuditComplete,
    bool ReconciliationClean,
    int SecretsInLogs,
    int LongJobs,
    int LongJobsDone,
    int MoversLimit,
    int MoversMax,
    int MoverSamples,
    int MoverSamplesBusy,
    int SingletonFailovers,
    int SingletonFailoversLate,
    double SingletonFailoverMaxSeconds,
    int FencedDispatches,
    int LinkCuts,
    int BrokerPartitions,
    int StorageRestarts,
    int BrokerNodes,
    int BrokerConnectionsMoved,
    int BrokerNodesRejoinedLate,
    string Store,
    bool PrivateDisks,
    int StoreRestarts,
    double Seconds,
    [property: System.Text.Json.Serialization.JsonIgnore] IReadOnlyList<string> Problems,
    [property: System.Text.Json.Serialization.JsonIgnore] bool PrivateDisksRequired = false)
{
    public bool Passed => Lost == 0 && Duplicated == 0 && Unexpected == 0 && Orphans == 0 && NonFinal == 0 && FailedFiles == 0
        && ChecksumsBad == 0 && CatalogAuditComplete && ReconciliationClean && SecretsInLogs == 0 && LongJobsDone == LongJobs && MoversMax <= MoversLimit && MoverSamplesBusy > 0 && CorruptionsCaught + CorruptionsReplaced == CorruptionsInjected
        && MergedCorruptionsCaught == MergedCorruptionsInjected && MergedFilesRemade == MergedCorruptionsInjected
        && SingletonFailoversLate == 0 && BrokerNodesRejoinedLate == 0 && (PrivateDisks || !PrivateDisksRequired);
}

/// <summary>
/// The fault suite: every service a process of its own on a broker of its own, files flowing through them while
/// workers of every stage are killed with SIGKILL (and started again), the orchestrator dies between saving a
/// file's state and publishing its next step, and the broker is restarted (orderly, then killed). A checker in the
/// spirit of Jepsen's reads the catalog and every archived byte at the end. With <see cref="FaultOptions.Network"/>
/// every service, the broker and a storage server holding the areas run on hosts of their own (network namespaces),
/// and the faults include a worker host's link cut, the broker host's link cut and the storage server killed and
/// started again. With <see cref="FaultOptions.BrokerNodes"/> above one the broker is a cluster of that many nodes on
/// hosts of their own, its queues quorum queues, and each broker fault falls on the node holding the most connections.
/// </summary>
public sealed class FaultSuite(FaultOptions options, TextWriter log)
{
    /// <summary>How long the broker's disk alarm blocks every publisher.</summary>
    private static readonly TimeSpan DiskAlarmDuration = TimeSpan.FromSeconds(15);

    // The first run's first section, in both streams: two jobs several times longer than the broker's consumer timeout.
    private static readonly ProcessPipeline.SlowJob SlowJob = new(1000, 1, ProcessPipeline.ConsumerTimeout * 4);

    /// <summary>The archive writers allowed at once across the deployment, and the archiver's own wish (more).</summary>
    public const int MoversLimit = 2;

    /// <summary>A second copy of every merged file on a slow simulated tape library (a disk on the storage server in a network run), written by an archiver that would run more writers than the limit allows.</summary>
    private static readonly Dictionary<string, string> SlowSecondCopy = new Dictionary<string, string>
    {
        ["Pipeline__Archives__vault__Kind"] = "Tape",
        ["Pipeline__Archives__vault__Tape__MegabytesPerSecond"] = "2",
        ["Pipeline__Archives__vault__Tape__MountSeconds"] = "0.3",
        ["Pipeline__Flow__Movers"] = MoversLimit.ToString(CultureInfo.InvariantCulture),
        ["Pipeline__Archiver__Writers"] = (MoversLimit * 2).ToString(CultureInfo.InvariantCulture),
    }.Concat(CampaignOptions.SampleDatasets.Keys.SelectMany(dataset => new[]
    {
        KeyValuePair.Create($"Pipeline__Flow__Datasets__{dataset}__Copies__0", StorageOptions.Archive),
        KeyValuePair.Create($"Pipeline__Flow__Datasets__{dataset}__Copies__1", Vault),
    })).ToDictionary();

    private const string Vault = "vault";

    private static readonly string[] Workers = ["stager", "reconstruction-1", "reconstruction-2", "collector", "merger", "archiver"];

    /// <summary>The hosts of a network run but the broker's: the storage server's, one per orchestrator, and three for the workers.</summary>
    private static readonly string[] HostNames = ["st", "o1", "o2", "w1", "w2", "w3"];

    /// <summary>The PostgreSQL server's host, in a network run with the state on one.</summary>
    private const string StateHostName = "db";

    /// <summary>In a network run with the state on PostgreSQL, every host has a disk of its own: nothing else is shared.</summary>
    private bool PrivateDisks => options.Network && options.Store == "postgres";

    /// <summary>The broker's hosts: one, or one per node of a cluster.</summary>
    private string[] BrokerHostNames => options.BrokerNodes > 1
        ? [.. Enumerable.Range(1, options.BrokerNodes).Select(n => $"mq{n.ToString(CultureInfo.InvariantCulture)}")]
        : ["mq"];

    /// <summary>How long a broker node restarted or killed may take to be running in its cluster again.</summary>
    private static readonly TimeSpan RejoinLimit = TimeSpan.FromMinutes(2);

    private static readonly string[] WorkerHosts = ["w1", "w2", "w3"];

    /// <summary>Which service runs on which host in a network run: each worker host has a reconstruction worker or the stager, and one more stage.</summary>
    private static readonly Dictionary<string, string> HostOf = new(StringComparer.Ordinal)
    {
        ["orchestrator"] = "o1", ["monitor"] = "o1", ["orchestrator-2"] = "o2", ["api"] = "o2",
        ["stager"] = "w1", ["collector"] = "w1", ["reconstruction-1"] = "w2", ["archiver"] = "w2", ["reconstruction-2"] = "w3", ["merger"] = "w3",
    };

    /// <summary>
    /// How long a worker host's link stays cut: beyond the reconstruction lease (10 s; <see cref="ProcessPipeline.LongLeaseSeconds"/>
    /// with disks of their own) and two of the broker's heartbeats (10 s each), so that its work moves on.
    /// </summary>
    private TimeSpan LinkCutDuration => TimeSpan.FromSeconds(PrivateDisks ? ProcessPipeline.LongLeaseSeconds + 15 : 25);

    /// <summary>How long the broker host's link stays cut.</summary>
    private static readonly TimeSpan BrokerPartitionDuration = TimeSpan.FromSeconds(30);

    /// <summary>How long the state store's server stays down: past a few of every stage's retries, and the watchdog's pass.</summary>
    private static readonly TimeSpan StoreDowntime = TimeSpan.FromSeconds(10);

    /// <summary>How long the storage server stays down between its kill and its start.</summary>
    private static readonly TimeSpan StorageDowntime = TimeSpan.FromSeconds(3);

    public async Task<FaultReport> RunAsync(CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var random = new Random(options.Seed);
        var crashAfter = 0;
        var problems = new List<string>();
        // The simulated tape library keeps its volumes in a folder: on the network the second copy is a disk on the storage server.
        var secondCopy = options.Network ? new Dictionary<string, string>(SlowSecondCopy) { [$"Pipeline__Archives__{Vault}__Kind"] = "Disk" } : SlowSecondCopy;
        // A cluster's nodes have hosts of their own even when the services run on this machine.
        await using var network = options.Network ? await TestNetwork.UpAsync([.. BrokerHostNames, .. HostNames, .. PrivateDisks ? new[] { StateHostName } : []], cancellationToken)
            : options.BrokerNodes > 1 ? await TestNetwork.UpAsync(BrokerHostNames, cancellationToken) : null;
        var brokerHosts = network is null ? null : BrokerHostNames.Select(name => network[name]).ToList();
        var placement = network is null ? null
            : options.Network ? new NetworkPlacement(network.BridgeAddress, HostOf.ToDictionary(p => p.Key, p => network[p.Value]), brokerHosts, network["st"], [Vault],
                PrivateDisks, PrivateDisks ? network[StateHostName] : null)
            : new NetworkPlacement(network.BridgeAddress, new Dictionary<string, NetworkHost>(), brokerHosts);
        // The orchestrator's first life ends at the crash point, somewhere in the middle of the run.
        await using var pipeline = await ProcessPipeline.StartAsync(options.WorkDirectory, options.BrokerPort, log,
            name => options.CrashOrchestrator && name == "orchestrator"
                ? new Dictionary<string, string> { [FaultInjection.SagaSavesVariable] = (crashAfter = random.Next(options.Files, options.Files * 4)).ToString(CultureInfo.InvariantCulture) }
                : null,
            releaseSleepMsMax: 300, cancellationToken, options.SlowJobs ? SlowJob : null,
            new Dictionary<string, IReadOnlyDictionary<string, string>>
            {
                ["stager"] = new Dictionary<string, string> { [FaultInjection.CorruptStagedVariable] = options.CorruptStagedEvery.ToString(CultureInfo.InvariantCulture) },
                ["merger"] = new Dictionary<string, string> { [FaultInjection.CorruptMergedVariable] = options.CorruptMergedEvery.ToString(CultureInfo.InvariantCulture) },
                ["archiver"] = secondCopy,
                ["api"] = secondCopy,
            }, network: placement, postgres: options.Store == "postgres");
        // Checked on the processes as they run, at the start and again at the end (after every restart).
        var privateDisks = PrivateDisks && pipeline.PrivateDisksChecked(log);
        var runs = await pipeline.GenerateAsync(options.Files, options.Seed);
        var files = runs.Sum(r => r.Files!.Count);
        var kills = 0;
        var (failovers, failoversLate, failoverMaxSeconds) = (0, 0, 0.0);
        var brokerRestarts = 0;
        var diskAlarms = 0;
        var (linkCuts, brokerPartitions, storageRestarts, storeRestarts) = (0, 0, 0, 0);
        var (connectionsMoved, rejoinedLate) = (0, 0);
        log.WriteLine($"faults: announcing {runs.Count} runs of {files} files; the orchestrator dies after saga save {crashAfter}");
        await pipeline.AnnounceAsync(runs, cancellationToken);
        // Keys in use, refused and unknown: what an API might be tempted to log.
        using (var viewer = pipeline.Api(pipeline.ViewerKey))
        {
            (await viewer.GetAsync("/api/summary", cancellationToken)).EnsureSuccessStatusCode();
            using var refused = await viewer.PostAsync("/api/stages/merger/pause", null, cancellationToken);
            if (refused.StatusCode != System.Net.HttpStatusCode.Forbidden)
            {
                problems.Add($"a viewer's pause was answered {(int)refused.StatusCode}, not 403");
            }
        }

        using var store = pipeline.OpenStore();
        // Archive writers in use, sampled all through the run: never more than the limit, whatever is killed.
        using var stopSampling = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var movers = SampleMoversAsync(store, stopSampling.Token);
        // Across hosts every area is reached through the storage server: in a 1,000-file run on this machine's 2 cores
        // the stager moved 1 to 6 files/s, and the files need longer to reach the archive. With disks of their own, a
        // job's input, outputs and logs go through it too (about 35 xrdcp/xrdfs processes per file, the machine's CPU
        // saturated): 200 files were reconstructed in 6 to 9 minutes, and merged only after. The suite ends as soon as
        // every file is final; this is only how long it waits at most.
        var filesPerMinute = PrivateDisks ? 10.0 : options.Network ? 20.0 : 50.0;
        var deadline = DateTime.UtcNow + (options.FinalWithin ?? TimeSpan.FromMinutes(Math.Max(5, files / filesPerMinute)));
        // Faults are spread over the run by progress: the i-th comes once the files are about i/(n+1) of the way
        // through the fault window (three quarters of the run by default; progress is half reconstruction, half
        // reaching the archive: files finish merging in bursts, at run ends), so that every fault falls while files
        // are still in flight.
        var schedule = Schedule(random);
        var orchestratorRestarted = !options.CrashOrchestrator;
        for (var step = 0; ; )
        {
            var (final, progress) = await ProcessPipeline.ProgressAsync(store.Sagas, cancellationToken);
            if (!orchestratorRestarted && !pipeline["orchestrator"].Running)
            {
                log.WriteLine($"faults: the orchestrator died at its crash point with {final} of {files} final; starting it again");
                kills++;
                await pipeline["orchestrator"].StartAsync(cancellationToken);
                orchestratorRestarted = true;
            }
            foreach (var dead in pipeline.Processes.Values.Where(p => !p.Running && (p.Name != "orchestrator" || orchestratorRestarted)))
            {
                problems.Add($"{dead.Name} exited by itself; see {dead.LogPath}");
                await dead.StartAsync(cancellationToken);
            }
            if (final >= files || DateTime.UtcNow > deadline)
            {
                break;
            }
            if (step < schedule.Count && progress >= options.FaultWindow * files * (step + 1.0) / (schedule.Count + 1))
            {
                switch (schedule[step++])
                {
                    case "broker-restart":
                        var restart = await BrokerNodeFaultAsync(pipeline, $"stop_app/start_app with {final} of {files} final", node => node.RestartApplicationAsync(cancellationToken),
                            problems, cancellationToken);
                        (brokerRestarts, connectionsMoved, rejoinedLate) = (brokerRestarts + 1, connectionsMoved + restart.Moved, rejoinedLate + restart.Late);
                        break;
                    case "disk-alarm":
                        log.WriteLine($"faults: RabbitMQ disk alarm for {DiskAlarmDuration.TotalSeconds:F0}s with {final} of {files} final");
                        if (await pipeline.Broker.DiskAlarmAsync(DiskAlarmDuration, cancellationToken))
                        {
                            diskAlarms++;
                        }
                        else
                        {
                            problems.Add("the broker never reported its disk alarm in force");
                        }
                        break;
                    case "broker-kill":
                        var kill = await BrokerNodeFaultAsync(pipeline, $"kill -9 and start with {final} of {files} final", node => node.KillAndStartAsync(cancellationToken),
                            problems, cancellationToken);
                        (brokerRestarts, connectionsMoved, rejoinedLate) = (brokerRestarts + 1, connectionsMoved + kill.Moved, rejoinedLate + kill.Late);
                        break;
                    case "singleton-kill":
                        var (holder, seconds) = await KillDispatcherHolderAsync(pipeline, store, final, files, problems, cancellationToken);
                        if (holder is null)
                        {
                            break;
                        }
                        kills++;
                        orchestratorRestarted |= holder == "orchestrator";
                        if (seconds is { } took)
                        {
                            failovers++;
                            failoverMaxSeconds = Math.Max(failoverMaxSeconds, took);
                        }
                        else
                        {
                            failoversLate++;
                        }
                        break;
                    case "link-cut":
                        var cut = WorkerHosts[random.Next(WorkerHosts.Length)];
                        log.WriteLine($"faults: link of worker host {cut} ({string.Join(", ", HostOf.Where(h => h.Value == cut).Select(h => h.Key))}) cut for {LinkCutDuration.TotalSeconds:F0}s with {final} of {files} final");
                        await CutLinkAsync(network!, cut, LinkCutDuration, cancellationToken);
                        linkCuts++;
                        break;
                    case "broker-partition":
                        var partition = await BrokerNodeFaultAsync(pipeline, $"its host's link cut for {BrokerPartitionDuration.TotalSeconds:F0}s with {final} of {files} final",
                            node => CutLinkAsync(network!, node.Host!.Name, BrokerPartitionDuration, cancellationToken), problems, cancellationToken);
                        (brokerPartitions, connectionsMoved, rejoinedLate) = (brokerPartitions + 1, connectionsMoved + partition.Moved, rejoinedLate + partition.Late);
                        break;
                    case "storage-restart":
                        log.WriteLine($"faults: kill -9 of the storage server, started again after {StorageDowntime.TotalSeconds:F0}s, with {final} of {files} final");
                        await pipeline.Storage!.KillAsync(cancellationToken);
                        await Task.Delay(StorageDowntime, cancellationToken);
                        await pipeline.Storage.StartAgainAsync(cancellationToken);
                        storageRestarts++;
                        break;
                    case "store-restart":
                        log.WriteLine($"faults: the state store's PostgreSQL server stopped for {StoreDowntime.TotalSeconds:F0}s with {final} of {files} final");
                        await pipeline.State!.StopAsync(cancellationToken);
                        await Task.Delay(StoreDowntime, cancellationToken);
                        await pipeline.State.StartAgainAsync(cancellationToken);
                        storeRestarts++;
                        break;
                    case var worker:
                        var victim = pipeline[worker];
                        log.WriteLine($"faults: kill -9 of {worker} with {final} of {files} final");
                        await victim.KillAsync();
                        kills++;
                        await Task.Delay(random.Next(200, 2000), cancellationToken);
                        await victim.StartAsync(cancellationToken);
                        break;
                }
                continue;
            }
            await Task.Delay(250, cancellationToken);
        }

        var nonFinal = files - (await ProcessPipeline.ProgressAsync(store.Sagas, cancellationToken)).Final;
        await stopSampling.CancelAsync();
        var (moversMax, moverSamples, moverSamplesBusy) = await movers;
        if (moversMax > MoversLimit)
        {
            problems.Add($"{moversMax} archive writers were in use at once; the limit is {MoversLimit}");
        }
        if (moverSamplesBusy == 0)
        {
            problems.Add($"no sample of {moverSamples} saw an archive writer at work");
        }
        // The audit as an operator asks for it, from the API process over the shared store.
        using var api = pipeline.Api(pipeline.OperatorKey);
        var apiAudit = await api.GetFromJsonAsync<CampaignAuditReport>("/api/campaigns/prompt/audit", new JsonSerializerOptions(JsonSerializerDefaults.Web), cancellationToken);
        log.WriteLine($"faults: {files - nonFinal} of {files} final after {watch.Elapsed.TotalSeconds:F0}s; checking");
        var orphans = await pipeline.OrphansAsync(nonFinal == 0, cancellationToken);
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), pipeline.Data, [Vault]);
        // The audit an operator runs, reading every byte as well: the catalog's manifests and the events both.
        var audit = await new CampaignAudit(store.Sagas, store.Catalog, areas).RunAsync("prompt", readEvents: true, cancellationToken);
        var events = audit.Events!;
        // And the catalog against the archive: every catalogued copy where it says, sound, and nothing else there.
        var reconciliation = await new Reconciler(store.Catalog, new NoAlerts(), new Pipeline.Infrastructure.Archive.ArchiveLibrary([new Pipeline.Infrastructure.Archive.AreaArchive(areas.Archive, null), new Pipeline.Infrastructure.Archive.AreaArchive(areas[Vault], null)]),
            new Pipeline.Production.Control.SingletonLeases(store.SingletonLeases, Microsoft.Extensions.Options.Options.Create(new Pipeline.Production.Control.SingletonOptions()),
                Microsoft.Extensions.Options.Options.Create(new Pipeline.Infrastructure.Hosting.PipelineOptions()), TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance),
            TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<Reconciler>.Instance).RunAsync(new ReconciliationOptions(VerifyChecksums: true, DarkAfter: TimeSpan.Zero, DryRun: true), null, cancellationToken);
        problems.AddRange(reconciliation.Bad.Select(b => $"reconciliation: {b.Area}/{b.Name}: {b.Problem}"));
        problems.AddRange(reconciliation.Dark.Select(d => $"reconciliation: {d.Area}/{d.Name} ({d.Size} bytes) is not in the catalog"));
        // And from the catalog alone: every output in exactly one archived file, by the merged files' manifests.
        var catalogAudit = audit;
        problems.AddRange(catalogAudit.ManifestProblems.Select(p => $"manifest: {p}"));
        problems.AddRange(catalogAudit.Missing.Concat(catalogAudit.Doubled).Concat(catalogAudit.Unexpected)
            .Select(f => $"catalog audit: {f.Dataset} output {f.OutputId} of {f.RawName} in [{string.Join(", ", f.MergedFiles)}]"));
        if (apiAudit?.Complete != catalogAudit.CatalogComplete)
        {
            problems.Add($"the API's audit says complete={apiAudit?.Complete}, the store's {catalogAudit.CatalogComplete}");
        }
        // The jobs that outlasted the broker's consumer timeout: each archived, its last attempt a single run of it.
        var longJobs = 0;
        var longJobsDone = 0;
        if (options.SlowJobs)
        {
            foreach (var run in runs.Where(r => r.Run == SlowJob.Run))
            {
                foreach (var file in run.Files!.Where(f => f.Section == SlowJob.Section))
                {
                    longJobs++;
                    var page = await store.Sagas.ListAsync(new FileQuery(Campaign: "prompt", RunFrom: run.Run, RunTo: run.Run, Stream: file.Stream, Limit: 1000), cancellationToken);
                    var saga = page.Files.FirstOrDefault(f => f.LogicalName == file.Name) is { } found ? await store.Sagas.LoadAsync(found.Id, cancellationToken) : null;
                    if (saga is { CurrentState: "Archived", ReconstructionSeconds: { } seconds } && seconds > ProcessPipeline.ConsumerTimeout.TotalSeconds)
                    {
                        longJobsDone++;
                    }
                    else
                    {
                        problems.Add($"the long job {file.Name} is {saga?.CurrentState ?? "missing"} after {saga?.ReconstructionSeconds:F0}s of reconstruction");
                    }
                }
            }
        }
        // Every staged copy the stager corrupted must have been caught before the release read it, and the file re-staged.
        var injected = await LoggedNamesAsync(pipeline["stager"].LogPath, FaultInjection.CorruptedStagedMessage, cancellationToken);
        var caught = new HashSet<string>(StringComparer.Ordinal);
        // A corrupted copy can also be overwritten before anything reads it: its staging was issued again (a stall,
        // a killed stager) and a later attempt's fresh copy is the one the file went on with.
        var replaced = new HashSet<string>(StringComparer.Ordinal);
        var fenced = 0;
        string? after = null;
        do
        {
            var page = await store.Sagas.ListAsync(new FileQuery(Campaign: "prompt", After: after, Limit: 1000), cancellationToken);
            foreach (var summary in page.Files)
            {
                if (await store.Sagas.LoadAsync(summary.Id, cancellationToken) is not { } saga)
                {
                    continue;
                }
                if (saga.History.Any(h => h.Detail?.Contains(" is corrupt: ", StringComparison.Ordinal) == true))
                {
                    caught.Add($"prompt/{saga.LogicalName}");
                }
                fenced += saga.History.Count(h => h.Detail?.StartsWith("slot refused: dispatched under lease token", StringComparison.Ordinal) == true);
                // Only first attempts are corrupted: a file first staged by a later attempt never used that copy.
                if (saga.History.FirstOrDefault(h => h.State == "Staged") is { Attempt: > 1 })
                {
                    replaced.Add($"prompt/{saga.LogicalName}");
                }
            }
            after = page.Next;
        }
        while (after is not null);
        replaced.UnionWith(await RestagedAfterCorruptionAsync(pipeline["stager"].LogPath, cancellationToken));
        // A worker that caught a corrupt copy but could not report it (the broker was down) is caught all the same: it
        // deleted the copy, and the file's next try found it missing and staged it again.
        foreach (var worker in Workers.Where(w => w.StartsWith("reconstruction", StringComparison.Ordinal)))
        {
            caught.UnionWith(await LoggedNamesAsync(pipeline[worker].LogPath, "failed: staged input", cancellationToken, before: " is corrupt:"));
        }
        problems.AddRange(injected.Except(caught).Except(replaced).Select(c => $"corrupted copy {c} was neither caught nor replaced before use"));
        // Every merged file the merger corrupted must have been caught by the archiver before any copy was catalogued,
        // and made again from its inputs (ChecksumsBad and the audits above say that what was archived is sound).
        var mergedInjected = await LoggedNamesAsync(pipeline["merger"].LogPath, FaultInjection.CorruptedMergedMessage, cancellationToken);
        var mergedCaught = await LoggedNamesAsync(pipeline["archiver"].LogPath, Archiver.ArchiveMergedFileConsumer.CorruptSourceMessage, cancellationToken);
        var remade = await LoggedNamesAsync(pipeline["merger"].LogPath, Merger.RemakeMergedFileConsumer.RemadeMessage, cancellationToken);
        problems.AddRange(mergedInjected.Except(mergedCaught).Select(m => $"corrupted merged file {m} was not caught by the archiver"));
        problems.AddRange(mergedInjected.Except(remade).Select(m => $"corrupted merged file {m} was not made again"));
        problems.AddRange(mergedCaught.Except(mergedInjected).Select(m => $"merged file {m} was found corrupted without being corrupted on purpose"));
        privateDisks = privateDisks && pipeline.PrivateDisksChecked(log);
        if (PrivateDisks && !privateDisks)
        {
            problems.Add("the hosts' disks were to be their own, and a process's view of the data folder showed otherwise");
        }
        await pipeline.StopAllAsync();
        var leaks = await pipeline.SecretsInLogsAsync(cancellationToken);
        problems.AddRange(leaks);
        var report = new FaultReport(files, kills, brokerRestarts, diskAlarms, events.EventsLost, events.EventsDuplicated, events.EventsUnexpected, orphans.Count, nonFinal,
            injected.Count, injected.Count(caught.Contains), injected.Count(c => !caught.Contains(c) && replaced.Contains(c)),
            mergedInjected.Count, mergedInjected.Count(mergedCaught.Contains), mergedInjected.Count(remade.Contains), audit.FailedRawFiles, events.ChecksumsBad, catalogAudit.CatalogComplete && apiAudit?.Complete == true, reconciliation.Clean, leaks.Count, longJobs, longJobsDone, MoversLimit, moversMax, moverSamples, moverSamplesBusy,
            failovers, failoversLate, Math.Round(failoverMaxSeconds, 1), fenced, linkCuts, brokerPartitions, storageRestarts,
            pipeline.BrokerNodes.Count, connectionsMoved, rejoinedLate, options.Store, privateDisks, storeRestarts, Math.Round(watch.Elapsed.TotalSeconds, 1),
            [.. problems, .. orphans.Select(o => $"orphan: {o}")], PrivateDisks);
        pipeline.KeepWork = !report.Passed;
        if (pipeline.KeepWork)
        {
            log.WriteLine($"faults: the run failed; its areas, store and logs are kept in {pipeline.Work}");
        }
        return report;
    }

    /// <summary>Samples the archive writers in use every 100 ms until cancelled: the most at once, the samples, and those that saw one at work.</summary>
    private static async Task<(int Max, int Samples, int Busy)> SampleMoversAsync(StoreBackend store, CancellationToken cancellationToken)
    {
        var (max, samples, busy) = (0, 0, 0);
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var inUse = (await store.Flow.ListMoversAsync(DateTimeOffset.UtcNow, cancellationToken)).Count;
                (max, samples, busy) = (Math.Max(max, inUse), samples + 1, busy + (inUse > 0 ? 1 : 0));
                await Task.Delay(100, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (Npgsql.NpgsqlException)
            {
                // The store's server is stopped as a fault: no sample while it is down.
                await Task.Delay(500, CancellationToken.None);
            }
        }
        return (max, samples, busy);
    }

    /// <summary>
    /// The staged copies corrupted on purpose whose file the stager staged again afterwards, in the same attempt: its
    /// StageFile delivered again after a broker restart, a disk alarm or a killed stager. The fresh copy overwrote the
    /// bad one before anything read it. A corrupting staging logs its own "Staged" line after the corruption, unless
    /// its process died first (a new life's start line comes before any other).
    /// </summary>
    private static async Task<IReadOnlySet<string>> RestagedAfterCorruptionAsync(string stagerLog, CancellationToken cancellationToken)
    {
        const string staged = "Staged ";
        var ownLineSeen = new Dictionary<string, bool>(StringComparer.Ordinal);
        var restaged = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var line in File.ReadLinesAsync(stagerLog, cancellationToken))
        {
            if (line.StartsWith("---- start ", StringComparison.Ordinal))
            {
                foreach (var copy in ownLineSeen.Keys.ToList())
                {
                    ownLineSeen[copy] = true;
                }
                continue;
            }
            var corrupted = line.IndexOf(FaultInjection.CorruptedStagedMessage, StringComparison.Ordinal);
            if (corrupted >= 0)
            {
                ownLineSeen[line[(corrupted + FaultInjection.CorruptedStagedMessage.Length)..].Trim().Split(' ')[0].Trim('"')] = false;
                continue;
            }
            var at = line.IndexOf(staged, StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }
            var logical = line[(at + staged.Length)..].Split(' ')[0].Trim('"');
            // The suite runs one campaign; a staged copy is named campaign/logical name.
            var copyName = $"prompt/{logical}";
            if (ownLineSeen.TryGetValue(copyName, out var seen))
            {
                if (seen)
                {
                    restaged.Add(copyName);
                }
                ownLineSeen[copyName] = true;
            }
        }
        return restaged;
    }

    /// <summary>The names a service logged right after the given message, over all its lives.</summary>
    /// <param name="before">When given, only lines where the name is followed by this count.</param>
    private static async Task<IReadOnlySet<string>> LoggedNamesAsync(string serviceLog, string message, CancellationToken cancellationToken, string? before = null)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var line in File.ReadLinesAsync(serviceLog, cancellationToken))
        {
            var at = line.IndexOf(message, StringComparison.Ordinal);
            if (at < 0)
            {
                continue;
            }
            var rest = line[(at + message.Length)..].Trim();
            var name = rest.Split(' ')[0].Trim('"', ':');
            if (before is null || rest[name.Length..].TrimStart('"').StartsWith(before, StringComparison.Ordinal))
            {
                names.Add(name);
            }
        }
        return names;
    }

    /// <summary>How long the dispatcher may be without a holder after its holder dies: its lease, a standby poll, and some slack.</summary>
    public static readonly TimeSpan FailoverLimit = TimeSpan.FromSeconds(new SingletonOptions().LeaseSeconds + new SingletonOptions().StandbySeconds + 3);

    /// <summary>
    /// Kills the orchestrator holding the dispatcher's lease with SIGKILL and waits for the other to take the lease (a
    /// higher token); then starts the killed one again. Returns the killed one's name (null if none held the lease)
    /// and the seconds until the takeover (null if it did not come within <see cref="FailoverLimit"/>).
    /// </summary>
    private async Task<(string? Holder, double? Seconds)> KillDispatcherHolderAsync(
        ProcessPipeline pipeline, StoreBackend store, int final, int files, List<string> problems, CancellationToken cancellationToken)
    {
        var lease = await store.SingletonLeases.GetAsync(Singletons.Dispatcher, cancellationToken);
        if (lease is null || lease.ExpiresAt < DateTimeOffset.UtcNow)
        {
            problems.Add("no orchestrator held the dispatcher's lease when its holder was to be killed");
            return (null, null);
        }
        var name = lease.Holder.Split('/')[0];
        var holder = pipeline[name];
        log.WriteLine($"faults: kill -9 of {name}, holding the dispatcher's lease (token {lease.Token}), with {final} of {files} final");
        await holder.KillAsync();
        var since = Stopwatch.StartNew();
        double? seconds = null;
        while (since.Elapsed < FailoverLimit)
        {
            if (await store.SingletonLeases.GetAsync(Singletons.Dispatcher, cancellationToken) is { } now && now.Token > lease.Token)
            {
                seconds = since.Elapsed.TotalSeconds;
                log.WriteLine($"faults: {now.Holder} took the dispatcher's lease (token {now.Token}) {seconds:F1}s after the kill");
                break;
            }
            await Task.Delay(100, cancellationToken);
        }
        if (seconds is null)
        {
            problems.Add($"nobody took the dispatcher's lease within {FailoverLimit.TotalSeconds:F0}s of its holder's death");
        }
        await holder.StartAsync(cancellationToken);
        return (name, seconds);
    }

    /// <summary>Cuts a host's link for a while: the fault lasts that long, whatever happens meanwhile; the link comes back even when the run is cancelled.</summary>
    /// <summary>
    /// A fault of the broker's node holding the most client connections (its only node, or one of a cluster). In a
    /// cluster, then waits until every node sees them all running again (late past <see cref="RejoinLimit"/>: 1, and a
    /// problem said) and counts the connections the other nodes gained meanwhile: services that moved to them.
    /// </summary>
    private async Task<(int Moved, int Late)> BrokerNodeFaultAsync(ProcessPipeline pipeline, string what, Func<FaultBroker, Task> fault, List<string> problems,
        CancellationToken cancellationToken)
    {
        var before = await ConnectionsAsync(pipeline, cancellationToken);
        var node = before.MaxBy(c => c.Connections).Node;
        log.WriteLine($"faults: broker node {node.Node} ({before.Single(c => c.Node == node).Connections} connections): {what}");
        await fault(node);
        if (pipeline.BrokerNodes.Count == 1)
        {
            return (0, 0);
        }
        var watch = Stopwatch.StartNew();
        while (!await ClusterWholeAsync(pipeline, cancellationToken))
        {
            if (watch.Elapsed > RejoinLimit)
            {
                problems.Add($"broker node {node.Node} was not running in its cluster again within {RejoinLimit.TotalSeconds:F0}s");
                return (0, 1);
            }
            await Task.Delay(500, cancellationToken);
        }
        var after = await ConnectionsAsync(pipeline, cancellationToken);
        var moved = Math.Max(0, after.Where(c => c.Node != node).Sum(c => c.Connections) - before.Where(c => c.Node != node).Sum(c => c.Connections));
        log.WriteLine($"faults: the broker's {pipeline.BrokerNodes.Count} nodes all running again {watch.Elapsed.TotalSeconds:F1}s later; {moved} connections moved to the other nodes");
        return (moved, 0);
    }

    private static async Task<List<(FaultBroker Node, int Connections)>> ConnectionsAsync(ProcessPipeline pipeline, CancellationToken cancellationToken)
    {
        var counts = new List<(FaultBroker Node, int Connections)>();
        foreach (var node in pipeline.BrokerNodes)
        {
            counts.Add((node, await node.ConnectionsAsync(cancellationToken)));
        }
        return counts;
    }

    private static async Task<bool> ClusterWholeAsync(ProcessPipeline pipeline, CancellationToken cancellationToken)
    {
        foreach (var node in pipeline.BrokerNodes)
        {
            if (await node.TryRunningNodesAsync(cancellationToken) != pipeline.BrokerNodes.Count)
            {
                return false;
            }
        }
        return true;
    }

    private static async Task CutLinkAsync(TestNetwork network, string host, TimeSpan duration, CancellationToken cancellationToken)
    {
        await network.CutAsync(host, cancellationToken);
        try
        {
            await Task.Delay(duration, cancellationToken);
        }
        finally
        {
            await network.RestoreAsync(host, CancellationToken.None);
        }
    }

    /// <summary>The faults in the order they come: worker kills round the stages in a shuffled order, broker restarts among them.</summary>
    private List<string> Schedule(Random random)
    {
        var schedule = new List<string>();
        while (schedule.Count < options.WorkerKills)
        {
            schedule.AddRange(Workers.OrderBy(_ => random.Next()).Take(options.WorkerKills - schedule.Count));
        }
        for (var i = 0; i < options.BrokerRestarts; i++)
        {
            var at = (i + 1) * (schedule.Count + 1) / (options.BrokerRestarts + 1);
            schedule.Insert(Math.Min(at, schedule.Count), i % 2 == 0 ? "broker-restart" : "broker-kill");
        }
        foreach (var (fault, times) in new[] { ("singleton-kill", options.SingletonKills), ("link-cut", options.Network ? options.LinkCuts : 0),
            ("broker-partition", options.Network ? options.BrokerPartitions : 0), ("storage-restart", options.Network ? options.StorageRestarts : 0),
            ("store-restart", options.Store == "postgres" ? options.StoreRestarts : 0) })
        {
            for (var i = 0; i < times; i++)
            {
                schedule.Insert(random.Next(schedule.Count + 1), fault);
            }
        }
        for (var i = 0; i < options.DiskAlarms; i++)
        {
            // In the first half: the last faults of a short run can come after its files are all final.
            schedule.Insert(random.Next(schedule.Count / 2 + 1), "disk-alarm");
        }
        return schedule;
    }

    /// <summary>The suite's own sweep is a dry run: it reports, and raises nothing.</summary>
    private sealed class NoAlerts : Pipeline.Production.Hosting.IAlerts
    {
        public Task RaiseAsync(string key, string kind, string severity, string message, CancellationToken cancellationToken) => Task.CompletedTask;

        public Task ResolveAsync(string key, CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
