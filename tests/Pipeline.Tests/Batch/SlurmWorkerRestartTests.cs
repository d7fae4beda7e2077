using System.Globalization;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Batch;

/// <summary>
/// The host killed with SIGKILL while ten of its Slurm jobs wait in the queue, then started again under another
/// instance name: it finds its jobs in Slurm and adopts them once their leases run out. No job is submitted twice.
/// </summary>
public sealed class When_a_slurm_worker_is_killed_and_restarted(SlurmCluster cluster) : IClassFixture<SlurmCluster>, IDisposable
{
    private const int Files = 16;
    private readonly TempDirectory _data = new();
    private readonly string _prefix = $"rs{Guid.NewGuid():N}"[..10];

    public void Dispose() => _data.Dispose();

    [SkippableFact]
    public async Task Should_adopt_its_jobs_and_submit_none_twice()
    {
        cluster.Require();
        IReadOnlyList<Pipeline.Reconstruction.Batch.SlurmJob> atKill;
        var host = new PipelineProcess(_data.Path);
        using var http = host.Http();
        var slurm = cluster.Client(_prefix);
        var environment = new Dictionary<string, string>
        {
            ["Pipeline__Transport"] = "InMemory",
            ["Pipeline__Campaign__MergeTargetBytes"] = "1048576",
            ["Pipeline__Merger__FlushIdleSeconds"] = "0.5",
            ["Pipeline__Merger__PollSeconds"] = "0.1",
            ["Pipeline__Orchestrator__LeaseSeconds"] = "6",
            ["Pipeline__Orchestrator__WatchdogIntervalSeconds"] = "1",
            ["Pipeline__Orchestrator__BatchAdoptionSeconds"] = "120",
            ["Pipeline__Reconstruction__Executor"] = "Slurm",
            ["Pipeline__Reconstruction__Slots"] = "10",
            ["Pipeline__Reconstruction__HeartbeatSeconds"] = "2",
            ["Pipeline__Reconstruction__Slurm__ConfigFile"] = cluster.ConfigFile,
            ["Pipeline__Reconstruction__Slurm__JobNamePrefix"] = _prefix,
            ["Pipeline__Reconstruction__Slurm__PollSeconds"] = "0.5",
            ["Pipeline__Reconstruction__Slurm__AdoptSeconds"] = "1",
            ["Pipeline__Reconstruction__Slurm__MemoryMegabytes"] = "100",
        };
        // The node is down: the jobs wait in the queue while the worker dies.
        await cluster.FailNodeAsync();
        try
        {
            using (var first = host.Start(new Dictionary<string, string>(environment) { ["SAMPLE_RUNS"] = "2", ["SAMPLE_FILES"] = "4", ["SAMPLE_EVENTS"] = "200" }))
            {
                await Eventually.Until(() => slurm.ListAsync(CancellationToken.None), jobs => jobs.Count(j => j.State == "PENDING") >= 10,
                    TimeSpan.FromMinutes(2), "ten jobs waiting in the queue", jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));
                first.Kill(entireProcessTree: false);
                await first.WaitForExitAsync();
            }
            atKill = await slurm.ListAsync(CancellationToken.None);

            using var second = host.Start(environment);
            try
            {
                await cluster.ResumeNodeAsync();
                await Eventually.Until(() => host.TotalsAsync(http),
                    totals => totals.GetValueOrDefault("Archived") + totals.GetValueOrDefault("Failed") == Files,
                    TimeSpan.FromMinutes(3), "every file final after the restart",
                    totals => string.Join(", ", totals.Select(t => $"{t.Key}={t.Value}")) + "\n" + host.LastLines);
            }
            finally
            {
                second.Kill(entireProcessTree: true);
                await second.WaitForExitAsync();
            }

            // Slurm's own list: every job queued at the kill ran once and completed, and no file got a second job.
            var jobs = await slurm.ListAsync(CancellationToken.None);
            Assert.All(atKill, queued => Assert.Equal("COMPLETED", jobs.Single(j => j.Id == queued.Id).State));
            var perFile = jobs.GroupBy(j => slurm.Owner(j.Name)!.Value.FileId).ToList();
            Assert.Equal(Files, perFile.Count);
            Assert.All(perFile, file => Assert.Single(file));
        }
        finally
        {
            await cluster.ResumeNodeAsync();
        }

        var store = StoreBackend.Sqlite(Path.Combine(_data.Path, "pipeline.db"));
        var raw = await store.Catalog.ListAsync(CatalogEntry.Raw, null, CancellationToken.None);
        var runs = raw.GroupBy(r => r.Name.Split('/')[1]).Select(g => new RunRecorded { Files = [.. g.Select(r => new RawFileRecord { Name = r.Name })] }).ToList();
        var campaign = new CampaignOptions();
        var audit = await PipelineUnderTest.AuditOf(runs, campaign.Name, new CampaignAudit(store.Sagas, store.Catalog, StorageAreas.FromConfiguration(new Dictionary<string, string?>(), _data.Path)));
        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        // Each file whose job waited in the queue at the kill finished in that very attempt: its job was adopted.
        foreach (var queued in atKill)
        {
            var (fileId, attempt) = slurm.Owner(queued.Name)!.Value;
            var file = (await store.Sagas.LoadAsync(fileId, CancellationToken.None))!;
            Assert.True(file.Attempt == attempt, $"{file.LogicalName} is at attempt {file.Attempt.ToString(CultureInfo.InvariantCulture)}: its job {queued.Id} was not adopted");
            Assert.Equal(FileStates.Archived, file.CurrentState);
        }
    }
}
