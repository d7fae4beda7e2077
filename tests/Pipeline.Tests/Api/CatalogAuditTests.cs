using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Api;
using Pipeline.Production.Audit;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

/// <summary>The audit from the catalog alone: complete for a finished campaign, and it names what a damaged catalog lost, doubled or forged.</summary>
public sealed class When_a_campaign_is_audited_from_the_catalog : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;
    private IReadOnlyList<CatalogEntry> _merged = [];

    public async Task InitializeAsync()
    {
        _pipeline = await PipelineUnderTest.StartAsync();
        var runs = await _pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 2, EventsPerFile: 60));
        await _pipeline.IngestAsync(runs);
        await _pipeline.WaitForFinalAsync(8);
        _merged = await Catalog.ListAsync(CatalogEntry.Merged, "prompt", CancellationToken.None);
    }

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    private ICatalog Catalog => _pipeline.Services.GetRequiredService<ICatalog>();

    private async Task<CampaignAuditReport> AuditAsync()
    {
        var response = await _pipeline.Client(PipelineUnderTest.ViewerKey).GetAsync("/api/campaigns/prompt/audit");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<CampaignAuditReport>(new JsonSerializerOptions(JsonSerializerDefaults.Web)))!;
    }

    [Fact]
    public async Task Should_prove_a_finished_campaign_complete_with_a_sound_manifest_for_every_merged_file()
    {
        var audit = await AuditAsync();

        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        Assert.Equal((8, 8, _merged.Count, _merged.Count), (audit.RawFiles, audit.ArchivedRawFiles, audit.MergedFiles, audit.ManifestsVerified));
        Assert.Equal(_merged.Sum(m => m.Events), audit.Datasets.Values.Sum(d => d.Events));
        foreach (var entry in _merged)
        {
            var manifest = MergeManifest.Parse(entry.Manifest)!;
            Assert.True(manifest.DigestHolds);
            Assert.Equal((entry.Size, entry.Adler32, entry.Events, "sample-1.0"), (manifest.Size, manifest.Adler32, manifest.Events, manifest.Release));
            Assert.All(manifest.Sources, s => Assert.True(s.FirstEvent <= s.LastEvent && s.Events > 0 && s.RawAdler32.Length == 8, JsonSerializer.Serialize(s)));
        }
        Assert.Equal(HttpStatusCode.NotFound, (await _pipeline.Http.GetAsync("/api/campaigns/no-such-campaign/audit")).StatusCode);
    }

    /// <summary>The lines of a check asked for with its progress: the progress reports, then the result.</summary>
    private async Task<(List<JsonElement> Progress, JsonElement Result)> StreamAsync(HttpMethod method, string path)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Accept.Add(new System.Net.Http.Headers.MediaTypeWithQualityHeaderValue(ProgressStream.MediaType));
        using var response = await _pipeline.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(ProgressStream.MediaType, response.Content.Headers.ContentType?.MediaType);
        var lines = (await response.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.True(lines[^1].TryGetProperty("result", out var result), lines[^1].GetRawText());
        return ([.. lines[..^1].Select(l => l.GetProperty("progress"))], result);
    }

    [Fact]
    public async Task Should_stream_how_far_the_audit_and_the_reconciliation_have_got_when_asked()
    {
        var (auditProgress, audit) = await StreamAsync(HttpMethod.Get, "/api/campaigns/prompt/audit");
        var plain = await _pipeline.Http.GetFromJsonAsync<JsonElement>("/api/campaigns/prompt/audit");
        var (reconcileProgress, reconciliation) = await StreamAsync(HttpMethod.Post, "/api/reconciliation?dryRun=true");

        Assert.Equal(plain.GetRawText(), audit.GetRawText());
        Assert.NotEmpty(auditProgress);
        Assert.All(auditProgress, p => Assert.InRange(p.GetProperty("done").GetInt64(), 1, p.GetProperty("total").GetInt64()));
        // The last report is the last step done: every merged file's manifest read.
        Assert.Equal("merged files' manifests read", auditProgress[^1].GetProperty("step").GetString());
        Assert.Equal(_merged.Count, auditProgress[^1].GetProperty("done").GetInt64());
        Assert.Equal(_merged.Count, auditProgress[^1].GetProperty("total").GetInt64());
        Assert.True(reconciliation.GetProperty("clean").GetBoolean(), reconciliation.GetRawText());
        Assert.NotEmpty(reconcileProgress);
        Assert.All(reconcileProgress, p => Assert.InRange(p.GetProperty("done").GetInt64(), 1, p.GetProperty("total").GetInt64()));
        Assert.Equal(HttpStatusCode.NotFound, (await _pipeline.Http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/api/campaigns/no-such-campaign/audit")
        {
            Headers = { Accept = { new System.Net.Http.Headers.MediaTypeWithQualityHeaderValue(ProgressStream.MediaType) } },
        })).StatusCode);
    }

    [Fact]
    public async Task Should_list_an_output_held_by_two_archived_files_as_doubled()
    {
        var original = _merged[0];
        // The same content catalogued a second time under another name, as a retried archive that lost its record would.
        await Catalog.AddAsync(original with { Name = original.Name.Replace(".evt", "-again.evt", StringComparison.Ordinal) }, CancellationToken.None);

        var audit = await AuditAsync();

        Assert.False(audit.Complete);
        var manifest = MergeManifest.Parse(original.Manifest)!;
        Assert.Equal(manifest.Sources.Select(s => s.OutputId).Order(), audit.Doubled.Select(d => d.OutputId).Order());
        Assert.All(audit.Doubled, d => Assert.Equal(2, d.MergedFiles.Count));
        Assert.Empty(audit.Missing);
    }

    [Fact]
    public async Task Should_list_the_outputs_of_a_merged_file_gone_from_the_catalog_as_missing()
    {
        var gone = _merged[^1];
        await using (var connection = new SqliteConnection($"Data Source={Path.Combine(_pipeline.DataDirectory, "pipeline.db")}"))
        {
            await connection.OpenAsync();
            await using var delete = connection.CreateCommand();
            delete.CommandText = "DELETE FROM catalog WHERE name = $name";
            delete.Parameters.AddWithValue("$name", gone.Name);
            Assert.True(await delete.ExecuteNonQueryAsync() >= 1);
        }

        var audit = await AuditAsync();

        Assert.False(audit.Complete);
        Assert.Equal(MergeManifest.Parse(gone.Manifest)!.Sources.Select(s => s.OutputId).Order(), audit.Missing.Select(m => m.OutputId).Order());
        Assert.Equal(gone.Dataset, Assert.Single(audit.Missing.Select(m => m.Dataset).Distinct()));
        Assert.Empty(audit.Doubled);
    }

    [Fact]
    public async Task Should_refuse_a_manifest_changed_after_it_was_sealed_and_one_claiming_another_raw_file()
    {
        var entry = _merged[0];
        var manifest = MergeManifest.Parse(entry.Manifest)!;
        // Edited without resealing: the digest no longer holds.
        var edited = manifest with { Sources = [.. manifest.Sources.Skip(1)] };
        await Catalog.AddAsync(entry with { Name = "merged/prompt/forged-1.evt", Manifest = edited.ToJson() }, CancellationToken.None);
        // Resealed, but naming a raw file's checksum the file records do not have.
        var resealed = (manifest with { Sources = [manifest.Sources[0] with { RawAdler32 = "00000001" }, .. manifest.Sources.Skip(1)] }).Sealed();
        await Catalog.AddAsync(entry with { Name = "merged/prompt/forged-2.evt", Manifest = resealed.ToJson() }, CancellationToken.None);

        var audit = await AuditAsync();

        Assert.False(audit.Complete);
        Assert.Contains(audit.ManifestProblems, p => p.StartsWith("merged/prompt/forged-1.evt in archive has a manifest whose digest does not match", StringComparison.Ordinal));
        Assert.Contains(audit.ManifestProblems, p => p.StartsWith("merged/prompt/forged-2.evt holds", StringComparison.Ordinal) && p.Contains("adler32 00000001", StringComparison.Ordinal));
    }
}
