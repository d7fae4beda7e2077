using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Net.Http.Json;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Host;
using Pipeline.Infrastructure.Audit;
using Pipeline.Infrastructure.Campaigns;
using Pipeline.Infrastructure.Faults;
using Pipeline.Infrastructure.State;
using Pipeline.Infrastructure.Storage;
using Pipeline.SampleExperiment;
using RabbitMQ.Client;

namespace Pipeline.Faults;

/// <summary>What one fault run is made of.</summary>
public sealed record FaultOptions(
    int Files = 1000,
    int WorkerKills = 20,
    int BrokerRestarts = 2,
    bool CrashOrchestrator = true,
    int Seed = 1,
    int BrokerPort = 5673,
    TimeSpan? FinalWithin = null,
    string? WorkDirectory = null);

/// <summary>What the checker found, from the catalog and the archived bytes alone. Its JSON is `make faults`' last line.</summary>
public sealed record FaultReport(
    int Files,
    int Kills,
    int BrokerRestarts,
    long Lost,
    long Duplicated,
    long Unexpected,
    int Orphans,
    int NonFinal,
    int CorruptionsInjected,
    int CorruptionsCaught,
    int FailedFiles,
    int ChecksumsBad,
    bool CatalogAuditComplete,
    int SecretsInLogs,
    double Seconds,
    [property: System.Text.Json.Serialization.JsonIgnore] IReadOnlyList<string> Problems)
{
    public bool Passed => Lost == 0 && Duplicated == 0 && Unexpected == 0 && Orphans == 0 && NonFinal == 0 && FailedFiles == 0
        && ChecksumsBad == 0 && CatalogAuditComplete && SecretsInLogs == 0 && CorruptionsCaught == CorruptionsInjected;
}

/// <summary>
/// The fault suite: every service a process of its own on a broker of its own, files flowing through them while
/// workers of every stage are killed with SIGKILL (and started again), the orchestrator dies between saving a
/// file's state and publishing its next step, and the broker is restarted (orderly, then killed). A checker in the
/// spirit of Jepsen's reads the catalog and every archived byte at the end.
/// </summary>
public sealed class FaultSuite(FaultOptions options, TextWriter log)
{
    private const double FaultWindow = 0.75;

    private static readonly string[] Workers = ["stager", "reconstruction-1", "reconstruction-2", "collector", "merger", "archiver"];

    private static readonly (string Name, string Project)[] Services =
    [
        ("orchestrator", "Pipeline.Orchestrator"),
        ("stager", "Pipeline.Stager"),
        ("reconstruction-1", "Pipeline.Reconstruction"),
        ("reconstruction-2", "Pipeline.Reconstruction"),
        ("collector", "Pipeline.Collector"),
        ("merger", "Pipeline.Merger"),
        ("archiver", "Pipeline.Archiver"),
        ("monitor", "Pipeline.Monitor"),
        ("api", "Pipeline.Api"),
    ];

    private static readonly string ViewerKey = "viewer-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
    private static readonly string OperatorKey = "operator-" + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    public async Task<FaultReport> RunAsync(CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var random = new Random(options.Seed);
        var work = options.WorkDirectory ?? Path.Combine(Path.GetTempPath(), $"pipeline-faults-{Guid.NewGuid():N}"[..30]);
        var data = Path.Combine(work, "data");
        var logs = Path.Combine(work, "logs");
        Directory.CreateDirectory(data);
        Directory.CreateDirectory(logs);
        log.WriteLine($"faults: working in {work}");

        await using var broker = await FaultBroker.StartAsync(Path.Combine(work, "broker"), options.BrokerPort, TimeSpan.FromMinutes(1), cancellationToken);
        var runs = await GenerateAsync(Path.Combine(data, "archive"));
        var files = runs.Sum(r => r.Files!.Count);
        var environment = Environment(broker.Uri, data);

        var processes = Services.ToDictionary(s => s.Name, s => new ServiceProcess(s.Name, ServiceDll(s.Project), environment, logs), StringComparer.Ordinal);
        var kills = 0;
        var brokerRestarts = 0;
        var problems = new List<string>();
        try
        {
            foreach (var process in processes.Values)
            {
                // The orchestrator's first life ends at the crash point, somewhere in the middle of the run.
                var crash = options.CrashOrchestrator && process.Name == "orchestrator"
                    ? new Dictionary<string, string> { [CrashPoint.SagaSavesVariable] = random.Next(files, files * 4).ToString(CultureInfo.InvariantCulture) }
                    : null;
                await process.StartAsync(cancellationToken, crash);
            }
            log.WriteLine($"faults: {processes.Count} services running; announcing {runs.Count} runs of {files} files");
            await AnnounceAsync(broker.Uri, runs, cancellationToken);
            // Keys in use, refused and unknown: what an API might be tempted to log.
            using (var viewer = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{processes["api"].Port.ToString(CultureInfo.InvariantCulture)}") })
            {
                viewer.DefaultRequestHeaders.Add("X-Api-Key", ViewerKey);
                (await viewer.GetAsync("/api/summary", cancellationToken)).EnsureSuccessStatusCode();
                using var refused = await viewer.PostAsync("/api/stages/merger/pause", null, cancellationToken);
                if (refused.StatusCode != System.Net.HttpStatusCode.Forbidden)
                {
                    problems.Add($"a viewer's pause was answered {(int)refused.StatusCode}, not 403");
                }
            }

            using var store = new SqlitePipelineStore(Path.Combine(data, "pipeline.db"));
            var deadline = DateTime.UtcNow + (options.FinalWithin ?? TimeSpan.FromMinutes(Math.Max(5, files / 50.0)));
            // Faults are spread over the run by progress: the i-th comes once the files are about i/(n+1) of the way
            // through the first three quarters (half for reconstruction, half for reaching the archive: files finish
            // merging in bursts, at run ends), so that every fault falls while files are still in flight.
            var schedule = Schedule(random);
            var orchestratorRestarted = !options.CrashOrchestrator;
            for (var step = 0; ; )
            {
                var (final, progress) = await ProgressAsync(store, cancellationToken);
                if (!orchestratorRestarted && !processes["orchestrator"].Running)
                {
                    log.WriteLine($"faults: the orchestrator died at its crash point with {final} of {files} final; starting it again");
                    kills++;
                    await processes["orchestrator"].StartAsync(cancellationToken);
                    orchestratorRestarted = true;
                }
                foreach (var dead in processes.Values.Where(p => !p.Running && (p.Name != "orchestrator" || orchestratorRestarted)))
                {
                    problems.Add($"{dead.Name} exited by itself; see {dead.LogPath}");
                    await dead.StartAsync(cancellationToken);
                }
                if (final >= files || DateTime.UtcNow > deadline)
                {
                    break;
                }
                if (step < schedule.Count && progress >= FaultWindow * files * (step + 1.0) / (schedule.Count + 1))
                {
                    switch (schedule[step++])
                    {
                        case "broker-restart":
                            log.WriteLine($"faults: broker stop_app/start_app with {final} of {files} final");
                            await broker.RestartApplicationAsync(cancellationToken);
                            brokerRestarts++;
                            break;
                        case "broker-kill":
                            log.WriteLine($"faults: kill -9 of the broker with {final} of {files} final");
                            await broker.KillAndStartAsync(cancellationToken);
                            brokerRestarts++;
                            break;
                        case var worker:
                            var victim = processes[worker];
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

            var nonFinal = files - (await ProgressAsync(store, cancellationToken)).Final;
            // The audit as an operator asks for it, from the API process over the shared store.
            using var api = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{processes["api"].Port.ToString(CultureInfo.InvariantCulture)}") };
            api.DefaultRequestHeaders.Add("X-Api-Key", OperatorKey);
            var apiAudit = await api.GetFromJsonAsync<CatalogAuditReport>("/api/campaigns/prompt/audit", new JsonSerializerOptions(JsonSerializerDefaults.Web), cancellationToken);
            log.WriteLine($"faults: {files - nonFinal} of {files} final after {watch.Elapsed.TotalSeconds:F0}s; checking");
            var orphans = await OrphansAsync(data, nonFinal == 0, cancellationToken);
            var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), data);
            var audit = await ProductionAudit.RunAsync(runs, CampaignOptions.SampleDatasets.Select(d => new DatasetSelection(d.Key, d.Value)).ToList(), "prompt", areas, store, store, cancellationToken);
            // And from the catalog alone: every output in exactly one archived file, by the merged files' manifests.
            var catalogAudit = await CatalogAudit.RunAsync("prompt", store, store, cancellationToken);
            problems.AddRange(catalogAudit.ManifestProblems.Select(p => $"manifest: {p}"));
            problems.AddRange(catalogAudit.Missing.Concat(catalogAudit.Doubled).Concat(catalogAudit.Unexpected)
                .Select(f => $"catalog audit: {f.Dataset} output {f.OutputId} of {f.RawName} in [{string.Join(", ", f.MergedFiles)}]"));
            if (apiAudit?.Complete != catalogAudit.Complete)
            {
                problems.Add($"the API's audit says complete={apiAudit?.Complete}, the store's {catalogAudit.Complete}");
            }
            foreach (var process in processes.Values)
            {
                await process.StopAsync(TimeSpan.FromSeconds(20));
            }
            var leaks = await SecretsInLogsAsync(logs, [broker.Password, ViewerKey, OperatorKey], cancellationToken);
            problems.AddRange(leaks);
            return new FaultReport(files, kills, brokerRestarts, audit.EventsLost, audit.EventsDuplicated, audit.EventsUnexpected, orphans.Count, nonFinal,
                0, 0, audit.FailedFiles, audit.ChecksumsBad, catalogAudit.Complete && apiAudit?.Complete == true, leaks.Count, Math.Round(watch.Elapsed.TotalSeconds, 1),
                [.. problems, .. orphans.Select(o => $"orphan: {o}")]);
        }
        finally
        {
            foreach (var process in processes.Values)
            {
                await process.DisposeAsync();
            }
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
        return schedule;
    }

    private async Task<IReadOnlyList<RunRecorded>> GenerateAsync(string archive)
    {
        // Two streams, runs of up to 50 files a stream: a thousand files are ten runs.
        var perStream = Math.Min(50, Math.Max(1, options.Files / 4));
        var runs = Math.Max(1, (int)Math.Ceiling(options.Files / (2.0 * perStream)));
        var generated = await SampleGenerator.GenerateAsync(archive, new SampleSpec(Runs: runs, FilesPerStream: perStream, EventsPerFile: 20, PayloadBytes: 64, Seed: options.Seed));
        // Exactly the number asked for: the last run keeps what is left.
        var left = options.Files;
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

    private static Dictionary<string, string> Environment(Uri broker, string data)
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
            ["Pipeline__Monitor__CheckIntervalSeconds"] = "2",
            ["Serilog__MinimumLevel__Default"] = "Information",
            // The API's keys: used while the files flow, and looked for in every log afterwards.
            ["Pipeline__Api__Keys__faults-viewer__Key"] = ViewerKey,
            ["Pipeline__Api__Keys__faults-viewer__Role"] = "viewer",
            ["Pipeline__Api__Keys__faults-operator__Key"] = OperatorKey,
            ["Pipeline__Api__Keys__faults-operator__Role"] = "operator",
        };
        // The sample release, sleeping a random time before writing its (deterministic) output.
        var arguments = ReleaseOptions.SampleArguments.Concat(["--sleep-ms-max", "300"]).ToList();
        for (var i = 0; i < arguments.Count; i++)
        {
            environment[$"Pipeline__Campaign__Release__Arguments__{i.ToString(CultureInfo.InvariantCulture)}"] = arguments[i];
        }
        return environment;
    }

    private static async Task AnnounceAsync(Uri broker, IReadOnlyList<RunRecorded> runs, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = broker };
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
    private static async Task<IReadOnlyList<string>> SecretsInLogsAsync(string logs, IReadOnlyList<string> secrets, CancellationToken cancellationToken)
    {
        var leaks = new List<string>();
        foreach (var file in Directory.EnumerateFiles(logs, "*.log"))
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
    private static async Task<(int Final, double Progress)> ProgressAsync(IFileSagaStore store, CancellationToken cancellationToken)
    {
        var counts = await store.CountByStateAsync(cancellationToken);
        var final = (int)counts.Where(c => FileStates.Final.Contains(c.State)).Sum(c => c.Files);
        var reconstructed = counts.Where(c => FileStates.PastReconstruction.Contains(c.State)).Sum(c => c.Files);
        return (final, (final + reconstructed) / 2.0);
    }

    /// <summary>
    /// Files that nothing will ever pick up once every file is final: temporary files of writes that died (after the
    /// sweeper has had its chance), staged copies left in the cache, merged files never archived out of the output area.
    /// </summary>
    private static async Task<IReadOnlyList<string>> OrphansAsync(string data, bool allFinal, CancellationToken cancellationToken)
    {
        List<string> Find() =>
        [
            .. Directory.EnumerateFiles(data, "*" + StorageArea.TemporaryMarker + "*", SearchOption.AllDirectories),
            .. Enumerate(Path.Combine(data, StorageOptions.Cache)),
            .. Enumerate(Path.Combine(data, StorageOptions.Output)),
        ];
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        var found = Find();
        while (allFinal && found.Count > 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500, cancellationToken);
            found = Find();
        }
        return found;
    }

    private static IEnumerable<string> Enumerate(string folder) =>
        Directory.Exists(folder) ? Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories) : [];

    /// <summary>A service's program as built beside this one (same configuration).</summary>
    private static string ServiceDll(string project)
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory);
        var root = here;
        while (root is not null && !File.Exists(Path.Combine(root.FullName, "Pipeline.sln")))
        {
            root = root.Parent;
        }
        if (root is null)
        {
            throw new InvalidOperationException($"no Pipeline.sln above {here.FullName}");
        }
        var configuration = here.Parent?.Name ?? "Release";
        var dll = Path.Combine(root.FullName, "services", project, "bin", configuration, "net10.0", project + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"{dll} is not built: run `dotnet build Pipeline.sln -c {configuration}` first", dll);
    }
}
