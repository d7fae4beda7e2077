using System.Diagnostics;
using Pipeline.Faults;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.State;
using Pipeline.Tests.Support;
using Xunit.Abstractions;

namespace Pipeline.Tests.EndToEnd;

/// <summary>
/// Services on hosts of their own: each reconstruction worker in a network namespace on a bridge of the test's own,
/// reaching the broker only over it; the rest on this machine. A worker host's link is cut while it runs jobs.
/// </summary>
[Collection(FaultSuiteCollection.Name)]
public sealed class When_a_worker_hosts_link_is_cut_mid_job(ITestOutputHelper testOutput)
{
    [SkippableFact]
    public async Task Should_do_its_files_on_the_other_host_and_ignore_its_late_results_when_the_link_returns()
    {
        Skip.IfNot(FaultBroker.Installed, $"The network tests run a RabbitMQ node of their own and need Debian's rabbitmq-server ({FaultBroker.ServerScript}), which is not installed here.");
        Skip.If(TestNetwork.Unavailable is not null, TestNetwork.Unavailable);
        await using var hosts = await TestNetwork.UpAsync(["w1", "w2"], CancellationToken.None);
        using var output = new StringWriter();
        try
        {
            var network = new NetworkPlacement(hosts.BridgeAddress, new Dictionary<string, NetworkHost>
            {
                ["reconstruction-1"] = hosts["w1"],
                ["reconstruction-2"] = hosts["w2"],
            });
            (string, string)[] services =
            [
                ("orchestrator", "Pipeline.Orchestrator"), ("stager", "Pipeline.Stager"), ("reconstruction-1", "Pipeline.Reconstruction"),
                ("reconstruction-2", "Pipeline.Reconstruction"), ("collector", "Pipeline.Collector"), ("merger", "Pipeline.Merger"),
                ("archiver", "Pipeline.Archiver"), ("monitor", "Pipeline.Monitor"), ("api", "Pipeline.Api"),
            ];
            // Jobs of up to 8 s, so that the cut falls while the worker runs some.
            await using var pipeline = await ProcessPipeline.StartAsync(null, 5693, output, _ => null, releaseSleepMsMax: 8000, CancellationToken.None,
                services: services, network: network);
            var runs = await pipeline.GenerateAsync(24, seed: 11);
            await pipeline.AnnounceAsync(runs, CancellationToken.None);
            using var store = StoreBackend.Sqlite(Path.Combine(pipeline.Data, "pipeline.db"));

            // The first host's link is cut while it runs jobs: its leases can no longer be renewed.
            var held = await Eventually.Until(() => HeldByAsync(store, "reconstruction-1"), files => files.Count > 0, TimeSpan.FromMinutes(2), "a job running on w1",
                files => $"{files.Count}");
            await hosts.CutAsync("w1", CancellationToken.None);
            var cut = Stopwatch.StartNew();
            output.WriteLine($"cut w1 with {held.Count} files on it: {string.Join(", ", held.Select(f => $"{f.CorrelationId} attempt {f.Attempt}"))}");

            // Their leases run out, and the other host does them.
            foreach (var file in held)
            {
                await Eventually.Until(() => store.Sagas.LoadAsync(file.CorrelationId, CancellationToken.None), f => f!.Attempt > file.Attempt && f.Worker == "reconstruction-2",
                    TimeSpan.FromMinutes(2), $"{file.CorrelationId} taken over by w2", f => $"{f!.CurrentState} attempt {f.Attempt} on {f.Worker}");
            }
            output.WriteLine($"w2 took over every file of w1 {cut.Elapsed.TotalSeconds:F1}s after the cut");

            // The link returns: the worker on w1 reconnects, and whatever it reports of its old attempts changes nothing.
            await hosts.RestoreAsync("w1", CancellationToken.None);
            await Eventually.Until(() => ProcessPipeline.ProgressAsync(store.Sagas, CancellationToken.None), p => p.Final == 24, TimeSpan.FromMinutes(4), "every file final",
                p => $"{p.Final} of 24");

            var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), pipeline.Data);
            var audit = await PipelineUnderTest.AuditOf(runs, "prompt", new CampaignAudit(store.Sagas, store.Catalog, areas));
            var context = $"{System.Text.Json.JsonSerializer.Serialize(audit)}\n{output}";
            Assert.True(audit.Complete, context);
            Assert.Equal((0L, 0L, 0L, 0), (audit.Events!.EventsLost, audit.Events!.EventsDuplicated, audit.Events!.EventsUnexpected, audit.FailedRawFiles));
            foreach (var file in held)
            {
                var done = (await store.Sagas.LoadAsync(file.CorrelationId, CancellationToken.None))!;
                Assert.Equal("Archived", done.CurrentState);
                // Reconstructed once, by the attempt on w2: w1's attempt left no result in the file's history.
                Assert.Equal([done.Attempt], done.History.Where(h => h.State == "Reconstructed").Select(h => h.Attempt).Distinct());
                Assert.True(done.Attempt > file.Attempt, context);
            }
            Assert.Empty(await pipeline.OrphansAsync(allFinal: true, CancellationToken.None));
        }
        finally
        {
            testOutput.WriteLine(output.ToString());
        }
    }

    /// <summary>The files whose reconstruction lease the worker holds now.</summary>
    private static async Task<IReadOnlyList<FileState>> HeldByAsync(StoreBackend store, string worker)
    {
        var page = await store.Sagas.ListAsync(new FileQuery(Campaign: "prompt", State: FileStates.Reconstructing, Limit: 1000), CancellationToken.None);
        var held = new List<FileState>();
        foreach (var summary in page.Files)
        {
            if (await store.Sagas.LoadAsync(summary.Id, CancellationToken.None) is { Worker: var holder } file && holder == worker)
            {
                held.Add(file);
            }
        }
        return held;
    }
}
