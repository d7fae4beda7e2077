using Pipeline.Faults;

namespace Pipeline.Tests.EndToEnd;

/// <summary>
/// The short version of `make faults`: the services as processes on a broker of their own, with workers of every
/// stage killed, the orchestrator killed between saving a file's state and publishing its next step, the
/// orchestrator holding the dispatcher's lease killed (the other of the two takes over), the broker
/// restarted and killed, staged copies and merged files corrupted and two jobs outlasting the broker's consumer timeout, while
/// files flow. Nothing may be lost, doubled, unexpected or left behind, and no secret may reach a log.
/// </summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_processes_and_the_broker_die_while_files_flow
{
    [SkippableFact]
    public async Task Should_archive_every_event_exactly_once_and_leave_nothing_behind()
    {
        // A port of its own, so that a `make faults` running beside the tests is not disturbed.
        var (report, context) = await ShortFaultRun.PassAsync(new FaultOptions(Files: 80, WorkerKills: 6, BrokerRestarts: 2, Seed: 7, BrokerPort: 5683, CorruptStagedEvery: 10,
            CorruptMergedEvery: 2, FaultWindow: 0.5));
        // The faults happened: a run that finished before its faults proves nothing.
        Assert.True(report.Kills >= 4, context);
        Assert.True(report.BrokerRestarts >= 1, context);
        Assert.Equal(1, report.DiskAlarms);
        // The orchestrator holding the dispatcher's lease was killed, and the other took the dispatcher over in time.
        Assert.Equal((1, 0), (report.SingletonFailovers, report.SingletonFailoversLate));
        Assert.InRange(report.SingletonFailoverMaxSeconds, 0, FaultSuite.FailoverLimit.TotalSeconds);
        Assert.True(report.CorruptionsInjected >= 2 && report.CorruptionsCaught >= 1 && report.CorruptionsCaught + report.CorruptionsReplaced == report.CorruptionsInjected, context);
        Assert.True(report.MergedCorruptionsInjected >= 1 && report.MergedCorruptionsCaught == report.MergedCorruptionsInjected
            && report.MergedFilesRemade == report.MergedCorruptionsInjected, context);
        Assert.Equal((2, 2), (report.LongJobs, report.LongJobsDone));
        Assert.Equal(0, report.SecretsInLogs);
    }
}

/// <summary>
/// The short version of `make faults NETWORK=1 STORE=postgres`: every service, the broker, a storage server holding the
/// areas and a PostgreSQL server holding the state on hosts of their own (network namespaces), each service with a disk
/// of its own (nothing it writes is seen by another but through the broker, the store or the storage server), while a
/// worker host's link is cut, the broker host's link is cut for 30 s, the storage server is killed and started again,
/// the state's server is stopped for 10 s, and the orchestrator holding the dispatcher's lease is killed.
/// </summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_hosts_with_disks_of_their_own_lose_their_links_and_the_servers_restart_while_files_flow
{
    [SkippableFact]
    public async Task Should_archive_every_event_exactly_once_and_leave_nothing_behind()
    {
        // Early in the run: the two long jobs keep it going past the last fault, whatever the machine's speed.
        var (report, context) = await ShortFaultRun.PassAsync(new FaultOptions(Files: 60, WorkerKills: 0, BrokerRestarts: 0, DiskAlarms: 0, SingletonKills: 1,
            CrashOrchestrator: false, Seed: 5, BrokerPort: 5687, FaultWindow: 0.3, Network: true, LinkCuts: 1, BrokerPartitions: 1, StorageRestarts: 1,
            Store: "postgres", StoreRestarts: 1));
        Assert.Equal((1, 1, 1, 1), (report.LinkCuts, report.BrokerPartitions, report.StorageRestarts, report.StoreRestarts));
        Assert.Equal(("postgres", true), (report.Store, report.PrivateDisks));
        Assert.Equal((1, 0), (report.SingletonFailovers, report.SingletonFailoversLate));
        Assert.Equal((2, 2), (report.LongJobs, report.LongJobsDone));
        Assert.True(report.CatalogAuditComplete && report.ReconciliationClean, context);
        Assert.Equal(0, report.SecretsInLogs);
    }
}

/// <summary>
/// The broker as a cluster of three RabbitMQ nodes on hosts of their own, every queue a quorum queue, the services
/// given the three nodes: the node holding the most connections is restarted, then killed (kill -9) and started
/// again, while files flow. Each time its services move to another node, and the node joins its cluster again.
/// </summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_a_node_of_a_three_node_broker_cluster_dies_while_files_flow
{
    [SkippableFact]
    public async Task Should_move_the_services_to_the_other_nodes_and_archive_every_event_exactly_once()
    {
        var (report, context) = await ShortFaultRun.PassAsync(new FaultOptions(Files: 60, WorkerKills: 0, BrokerRestarts: 2, DiskAlarms: 0, SingletonKills: 0,
            CrashOrchestrator: false, Seed: 9, BrokerPort: 5689, CorruptStagedEvery: 0, CorruptMergedEvery: 0, FaultWindow: 0.4, BrokerNodes: 3));
        Assert.Equal((3, 2, 0), (report.BrokerNodes, report.BrokerRestarts, report.BrokerNodesRejoinedLate));
        // Services were on the nodes that went down: they had to reconnect to the others, and publish and consume there.
        Assert.True(report.BrokerConnectionsMoved >= 10, context);
        Assert.Equal((2, 2), (report.LongJobs, report.LongJobsDone));
        Assert.True(report.CatalogAuditComplete && report.ReconciliationClean, context);
        Assert.Equal(0, report.SecretsInLogs);
    }
}

/// <summary>
/// The services as processes sharing nothing on disk for their state: every saga, run, catalog entry and buffer in a
/// PostgreSQL server of its own, which is stopped for ten seconds and started again while files flow, with workers
/// and the dispatcher's holder killed too. Ten processes write to it at once.
/// </summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_the_state_stores_postgresql_server_stops_while_processes_die_and_files_flow
{
    [SkippableFact]
    public async Task Should_archive_every_event_exactly_once_and_leave_nothing_behind()
    {
        var (report, context) = await ShortFaultRun.PassAsync(new FaultOptions(Files: 60, WorkerKills: 2, BrokerRestarts: 0, DiskAlarms: 0, SingletonKills: 1,
            CrashOrchestrator: false, Seed: 11, BrokerPort: 5691, CorruptStagedEvery: 0, CorruptMergedEvery: 0, FaultWindow: 0.4, Store: "postgres", StoreRestarts: 1));
        Assert.Equal(("postgres", 1), (report.Store, report.StoreRestarts));
        Assert.Equal((1, 0), (report.SingletonFailovers, report.SingletonFailoversLate));
        Assert.Equal((2, 2), (report.LongJobs, report.LongJobsDone));
        Assert.True(report.CatalogAuditComplete && report.ReconciliationClean, context);
        Assert.Equal(0, report.SecretsInLogs);
    }
}

/// <summary>A short fault run as the tests make it: skipped, with the reason, where its broker or hosts cannot run here.</summary>
internal static class ShortFaultRun
{
    /// <summary>
    /// Runs the suite and checks what every run must show: passed, and nothing lost, doubled, unexpected, orphaned
    /// or left short of a final state. Returns the report, and its JSON, problems and log for the tests' own checks.
    /// </summary>
    public static async Task<(FaultReport Report, string Context)> PassAsync(FaultOptions options)
    {
        Skip.IfNot(FaultBroker.Installed, $"The fault suite runs RabbitMQ nodes of its own and needs Debian's rabbitmq-server ({FaultBroker.ServerScript}), which is not installed here.");
        if (options.Network || options.BrokerNodes > 1)
        {
            Skip.If(TestNetwork.Unavailable is not null, TestNetwork.Unavailable);
        }
        using var output = new StringWriter();

        var report = await new FaultSuite(options, output).RunAsync(CancellationToken.None);

        var context = $"{System.Text.Json.JsonSerializer.Serialize(report)}\n{string.Join('\n', report.Problems)}\n{output}";
        Assert.True(report.Passed, context);
        Assert.Equal((options.Files, 0L, 0L, 0L, 0, 0), (report.Files, report.Lost, report.Duplicated, report.Unexpected, report.Orphans, report.NonFinal));
        return (report, context);
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class FaultSuiteCollection
{
    public const string Name = "fault suite";
}
