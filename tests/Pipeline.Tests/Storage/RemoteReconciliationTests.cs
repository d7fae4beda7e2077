using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Production.Audit;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// The reconciliation sweep over archive areas on a storage server: the archive over root:// (listed with xrdfs ls),
/// a second copy's area over HTTP (listed with PROPFIND).
/// </summary>
public sealed class When_the_catalog_and_remote_archive_areas_disagree(XrootdServer server) : IClassFixture<XrootdServer>
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    [SkippableFact]
    public async Task Should_restore_a_lost_copy_from_the_other_endpoint_mark_a_changed_one_bad_and_quarantine_files_nobody_catalogued()
    {
        server.Require();
        var top = $"reconcile-{Guid.NewGuid():N}";
        var onDisk = Path.Combine(server.DataPath, top);
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Areas:archive"] = $"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{top}/archive",
            ["Pipeline:Areas:vault"] = new Uri(server.HttpUri, $"{top}/vault").AbsoluteUri,
            ["Pipeline:Archives:vault:Kind"] = "Disk",
            ["Pipeline:Flow:Datasets:muon:Copies:0"] = "archive",
            ["Pipeline:Flow:Datasets:muon:Copies:1"] = "vault",
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(2);
        var catalog = pipeline.Services.GetRequiredService<ICatalog>();
        var merged = await catalog.ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None);
        var api = pipeline.Client(PipelineUnderTest.OperatorKey);
        Assert.True((await ReconcileAsync(api, "?darkAfterMinutes=0")).Clean);

        // On the server's disk: a muon copy lost from the archive, another dataset's only copy changed, a stray in each area.
        var muon = merged.First(m => m.Dataset == "muon" && m.Area == "archive");
        File.Delete(Path.Combine(onDisk, "archive", muon.Name));
        var single = merged.First(m => m.Dataset != "muon");
        var changed = Path.Combine(onDisk, "archive", single.Name);
        var bytes = await File.ReadAllBytesAsync(changed);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(changed, bytes);
        foreach (var area in new[] { "archive", "vault" })
        {
            var stray = Path.Combine(onDisk, area, "merged", "prompt", "stray.evt");
            Directory.CreateDirectory(Path.GetDirectoryName(stray)!);
            await File.WriteAllBytesAsync(stray, new byte[123]);
            File.SetLastWriteTimeUtc(stray, DateTime.UtcNow.AddHours(-2));
        }

        var sweep = await ReconcileAsync(api, "?verify=true");
        var context = JsonSerializer.Serialize(sweep);

        var restored = Assert.Single(sweep.Restored);
        Assert.Equal((muon.Name, "archive", "restored from vault"), (restored.Name, restored.Area, restored.Outcome));
        Assert.Equal(muon.Adler32, Adler32Checksum.Format(Adler32Checksum.Of(await File.ReadAllBytesAsync(Path.Combine(onDisk, "archive", muon.Name)))));
        var bad = Assert.Single(sweep.Bad);
        Assert.Equal(single.Name, bad.Name);
        Assert.NotNull(Assert.Single(await catalog.FindAsync(single.Name, CancellationToken.None)).Bad);
        Assert.False(File.Exists(changed), "the changed copy stayed under its name");
        // Files nobody catalogued are moved aside on the server, never deleted.
        Assert.Equal(["archive", "vault"], sweep.Dark.Select(d => d.Area).Order(StringComparer.Ordinal));
        Assert.All(sweep.Dark, d =>
        {
            Assert.Equal(("merged/prompt/stray.evt", 123L), (d.Name, d.Size));
            Assert.True(File.Exists(Path.Combine(onDisk, d.Area, d.QuarantinedAs!)), context);
            Assert.False(File.Exists(Path.Combine(onDisk, d.Area, d.Name)), context);
        });
    }

    private static async Task<ReconciliationReport> ReconcileAsync(HttpClient api, string query)
    {
        using var response = await api.PostAsync("/api/reconciliation" + query, null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<ReconciliationReport>(Json))!;
    }
}
