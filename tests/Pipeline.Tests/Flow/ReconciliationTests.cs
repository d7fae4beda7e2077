using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Production.Audit;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

public sealed class When_the_catalog_and_the_archive_areas_disagree
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [Fact]
    public async Task Should_restore_what_another_copy_holds_mark_the_rest_bad_and_quarantine_what_the_catalog_lacks()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Archives:vault:Kind"] = "Disk",
            ["Pipeline:Flow:Datasets:muon:Copies:0"] = "archive",
            ["Pipeline:Flow:Datasets:muon:Copies:1"] = "vault",
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(2);
        var catalog = pipeline.Services.GetRequiredService<ICatalog>();
        var merged = await catalog.ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None);
        var operatorApi = pipeline.Client(PipelineUnderTest.OperatorKey);

        // As archived, the catalog and the areas agree.
        var first = await ReconcileAsync(operatorApi, "?darkAfterMinutes=0");
        Assert.True(first.Clean, JsonSerializer.Serialize(first));
        Assert.Equal(merged.Count + 2, first.CopiesChecked);

        // A muon copy lost from the archive (the vault holds another), a merged file of another dataset whose one copy
        // went bad, a raw file gone, and two files nobody catalogued: one old, one just written.
        var muon = merged.First(m => m.Dataset == "muon" && m.Area == "archive");
        File.Delete(pipeline.Areas.Archive.PathOf(muon.Name));
        var single = merged.First(m => m.Dataset != "muon");
        Pipeline.Infrastructure.Faults.FaultInjection.FlipByte(pipeline.Areas.Archive.PathOf(single.Name));
        var raw = runs[0].Files![0].Name!;
        var kept = Path.Combine(pipeline.DataDirectory, "kept-by-an-operator.raw");
        File.Move(pipeline.Areas.Archive.PathOf(raw), kept);
        var stray = "merged/prompt/stray.evt";
        await pipeline.Areas.Archive.WriteAsync(stray, (s, ct) => s.WriteAsync(new byte[123], ct).AsTask(), CancellationToken.None);
        File.SetLastWriteTimeUtc(pipeline.Areas.Archive.PathOf(stray), DateTime.UtcNow.AddHours(-2));
        var fresh = "merged/prompt/being-written.evt";
        await pipeline.Areas.Archive.WriteAsync(fresh, (s, ct) => s.WriteAsync(new byte[7], ct).AsTask(), CancellationToken.None);

        // A dry run reports and changes nothing.
        var dry = await ReconcileAsync(operatorApi, "?dryRun=true&verify=true");
        Assert.Equal(4, dry.Bad.Count + dry.Dark.Count);
        Assert.True(pipeline.Areas.Archive.Exists(stray));
        Assert.All(await catalog.FindAsync(raw, CancellationToken.None), e => Assert.Null(e.Bad));

        var sweep = await ReconcileAsync(operatorApi, "?verify=true");
        var context = JsonSerializer.Serialize(sweep);
        var restored = Assert.Single(sweep.Restored);
        Assert.Equal((muon.Name, "archive", "restored from vault"), (restored.Name, restored.Area, restored.Outcome));
        var (size, adler) = await pipeline.Areas.Archive.ChecksumAsync(muon.Name, CancellationToken.None);
        Assert.Equal((muon.Size, muon.Adler32), (size, Pipeline.Infrastructure.Checksums.Adler32Checksum.Format(adler)));
        Assert.Equal(new[] { raw, single.Name }.Order(StringComparer.Ordinal), sweep.Bad.Select(b => b.Name).Order(StringComparer.Ordinal));
        Assert.Contains(sweep.Bad, b => b.Name == single.Name && b.Problem.StartsWith("adler32 ", StringComparison.Ordinal));
        Assert.Contains(sweep.Bad, b => b.Name == raw && b.Problem == "missing from storage");
        Assert.Equal("missing from storage", Assert.Single(await catalog.FindAsync(raw, CancellationToken.None)).Bad);
        Assert.NotNull(Assert.Single(await catalog.FindAsync(single.Name, CancellationToken.None)).Bad);
        // The wrong copy is moved aside, never deleted; so is the old stray; the fresh one is left to its writer.
        var dark = Assert.Single(sweep.Dark);
        Assert.Equal((stray, 123L), (dark.Name, dark.Size));
        Assert.False(pipeline.Areas.Archive.Exists(stray));
        Assert.True(pipeline.Areas.Archive.Exists(dark.QuarantinedAs!), context);
        Assert.True(pipeline.Areas.Archive.Exists(fresh));
        Assert.Contains(Directory.EnumerateFiles(pipeline.Areas.Archive.PathOf(Reconciler.QuarantineFolder), "*", SearchOption.AllDirectories),
            path => path.EndsWith(single.Name, StringComparison.Ordinal));
        // The sweep raises its alerts by message to the monitor, which keeps them.
        var health = pipeline.Services.GetRequiredService<IHealthStore>();
        var alerts = await Eventually.Until(() => health.ListAlertsAsync(activeOnly: true, 100, CancellationToken.None),
            all => all.Count(a => a.Kind == "catalog-bad") == 2 && all.Any(a => a.Kind == "catalog-dark"), TimeSpan.FromSeconds(30), "the sweep's alerts",
            all => string.Join("; ", all.Select(a => a.Key)));
        Assert.Single(alerts, a => a.Kind == "catalog-dark" && a.Message.Contains(stray, StringComparison.Ordinal));

        // An operator brings the raw file back: the next sweep clears its mark and its alert, and finds the rest settled.
        File.Move(kept, pipeline.Areas.Archive.PathOf(raw));
        var after = await ReconcileAsync(operatorApi, "");
        Assert.Equal([single.Name], after.Bad.Select(b => b.Name));
        Assert.Empty(after.Restored);
        Assert.Empty(after.Dark);
        Assert.Null(Assert.Single(await catalog.FindAsync(raw, CancellationToken.None)).Bad);
        alerts = await Eventually.Until(() => health.ListAlertsAsync(activeOnly: true, 100, CancellationToken.None),
            all => all.Count(a => a.Kind == "catalog-bad") == 1, TimeSpan.FromSeconds(30), "the restored raw file's alert resolved", all => string.Join("; ", all.Select(a => a.Key)));
        Assert.Contains(alerts, a => a.Kind == "catalog-bad" && a.Message.Contains(single.Name, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Should_be_refused_to_a_viewer()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        using var response = await pipeline.Client(PipelineUnderTest.ViewerKey).PostAsync("/api/reconciliation", null);
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
    }

    private static async Task<ReconciliationReport> ReconcileAsync(HttpClient api, string query)
    {
        using var response = await api.PostAsync("/api/reconciliation" + query, null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<ReconciliationReport>(Json))!;
    }
}

public sealed class When_an_operator_reconciles_from_the_command_line
{
    [Fact]
    public async Task Should_print_the_report_as_json_and_exit_1_only_when_something_is_wrong()
    {
        using var folder = new TempDirectory();
        var areas = Pipeline.Infrastructure.Storage.StorageAreas.FromConfiguration(new Dictionary<string, string?>(), folder.Path);
        var (size, adler) = await areas.Archive.WriteAsync("raw/run000001/a.raw", (s, ct) => s.WriteAsync(new byte[100], ct).AsTask(), CancellationToken.None);
        using (var store = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db")))
        {
            await store.Catalog.AddAsync(new CatalogEntry("raw/run000001/a.raw", "archive", CatalogEntry.Raw, null, null, size,
                Pipeline.Infrastructure.Checksums.Adler32Checksum.Format(adler), 1, [], DateTimeOffset.UtcNow), CancellationToken.None);
        }

        var (clean, cleanReport) = await ReconcileAsync(folder.Path, "--verify");
        Assert.Equal(0, clean);
        Assert.Equal(1, cleanReport.CopiesChecked);

        await areas.Archive.WriteAsync("raw/run000001/stray.raw", (s, ct) => s.WriteAsync(new byte[3], ct).AsTask(), CancellationToken.None);
        var (dirty, dirtyReport) = await ReconcileAsync(folder.Path, "--dry-run", "--dark-after-minutes=0");
        Assert.Equal(1, dirty);
        Assert.Equal("raw/run000001/stray.raw", Assert.Single(dirtyReport.Dark).Name);
        Assert.True(areas.Archive.Exists("raw/run000001/stray.raw"), "a dry run moved a file");
    }

    private static async Task<(int Exit, ReconciliationReport Report)> ReconcileAsync(string data, params string[] flags)
    {
        var run = await Tool.RunAsync("dotnet", new[] { Path.Combine(AppContext.BaseDirectory, "Pipeline.Host.dll"), "reconcile" }.Concat(flags).Append($"--Pipeline:DataDirectory={data}"));
        var lines = run.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length > 0, run.Errors);
        return (run.ExitCode, JsonSerializer.Deserialize<ReconciliationReport>(lines[^1], new JsonSerializerOptions(JsonSerializerDefaults.Web))!);
    }
}
