using System.Diagnostics;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.EndToEnd;

/// <summary>
/// `make run` killed with SIGKILL while files are in flight, then started again: the in-memory
/// transport lost every message, so the durable state alone must bring every file to the end, once.
/// </summary>
public sealed class When_the_all_in_one_pipeline_is_killed_and_restarted : IDisposable
{
    private readonly TempDirectory _data = new();
    private readonly PipelineProcess _host;

    public When_the_all_in_one_pipeline_is_killed_and_restarted() => _host = new PipelineProcess(_data.Path);

    public void Dispose() => _data.Dispose();

    private Process StartPipeline(bool withSampleRuns)
    {
        var environment = new Dictionary<string, string>
        {
            ["Pipeline__Transport"] = "InMemory",
            ["Pipeline__Campaign__MergeTargetBytes"] = "1048576",
            ["Pipeline__Merger__FlushIdleSeconds"] = "0.5",
            ["Pipeline__Merger__PollSeconds"] = "0.1",
            ["Pipeline__Reconstruction__Slots"] = "2",
        };
        // Each job takes a while, so that the kill finds work in every stage.
        string[] arguments = ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}", "--cpu-ms-per-event", "1"];
        for (var i = 0; i < arguments.Length; i++)
        {
            environment[$"Pipeline__Campaign__Release__Arguments__{i}"] = arguments[i];
        }
        if (withSampleRuns)
        {
            environment["SAMPLE_RUNS"] = "2";
            environment["SAMPLE_FILES"] = "4";
            environment["SAMPLE_EVENTS"] = "400";
        }
        return _host.Start(environment);
    }

    private Task<Dictionary<string, long>> Totals(HttpClient http) => _host.TotalsAsync(http);

    [Fact]
    public async Task Should_finish_every_file_with_no_event_lost_or_doubled()
    {
        const int files = 16;
        using var http = _host.Http();

        using (var first = StartPipeline(withSampleRuns: true))
        {
            var atKill = await Eventually.Until(() => Totals(http),
                totals => totals.Values.Sum() == files
                    && totals.GetValueOrDefault("Reconstructed") + totals.GetValueOrDefault("Merged") + totals.GetValueOrDefault("Archived") >= 1,
                TimeSpan.FromMinutes(3), "some files done and the rest in flight",
                totals => string.Join(", ", totals.Select(t => $"{t.Key}={t.Value}")));
            first.Kill(entireProcessTree: false);
            await first.WaitForExitAsync();
            Assert.True(atKill.GetValueOrDefault("Archived") < files, "the kill came too late: every file was already archived");
        }

        using (var second = StartPipeline(withSampleRuns: false))
        {
            try
            {
                await Eventually.Until(() => Totals(http),
                    totals => totals.GetValueOrDefault("Archived") + totals.GetValueOrDefault("Failed") == files,
                    TimeSpan.FromMinutes(3), "every file final after the restart",
                    totals => string.Join(", ", totals.Select(t => $"{t.Key}={t.Value}")));
            }
            finally
            {
                second.Kill(entireProcessTree: true);
                await second.WaitForExitAsync();
            }
        }

        var store = StoreBackend.Sqlite(Path.Combine(_data.Path, "pipeline.db"));
        var raw = await store.Catalog.ListAsync(CatalogEntry.Raw, null, CancellationToken.None);
        var runs = raw.GroupBy(r => r.Name.Split('/')[1])
            .Select(g => new RunRecorded { Files = [.. g.Select(r => new RawFileRecord { Name = r.Name })] })
            .ToList();
        var campaign = new CampaignOptions();
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), _data.Path);

        var audit = await PipelineUnderTest.AuditOf(runs, campaign.Name, new CampaignAudit(store.Sagas, store.Catalog, areas));

        Assert.Equal(files, audit.RawFiles);
        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        // The lost steps were found and issued again from the stored state, not replayed from anywhere else.
        var sagas = await store.Sagas.ListAsync(new FileQuery(Limit: 1000), CancellationToken.None);
        var reissued = 0;
        foreach (var summary in sagas.Files)
        {
            reissued += (await store.Sagas.LoadAsync(summary.Id, CancellationToken.None))!.Stalls;
        }
        Assert.True(reissued > 0, "no step was re-issued after the restart");
    }
}
