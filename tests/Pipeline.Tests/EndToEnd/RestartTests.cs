using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Host;
using Pipeline.Infrastructure.Storage;
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
    private readonly int _port = FreePort();

    public void Dispose() => _data.Dispose();

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private Process StartPipeline(bool withSampleRuns)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = _data.Path,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "Pipeline.Host.dll"), "run", "--urls", $"http://127.0.0.1:{_port}" })
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["Pipeline__DataDirectory"] = _data.Path;
        start.Environment["Pipeline__Transport"] = "InMemory";
        start.Environment["Pipeline__Campaign__MergeTargetBytes"] = "1048576";
        start.Environment["Pipeline__Merger__FlushIdleSeconds"] = "0.5";
        start.Environment["Pipeline__Merger__PollSeconds"] = "0.1";
        start.Environment["Pipeline__Reconstruction__Slots"] = "2";
        // Each job takes a while, so that the kill finds work in every stage.
        string[] arguments = ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}", "--cpu-ms-per-event", "1"];
        for (var i = 0; i < arguments.Length; i++)
        {
            start.Environment[$"Pipeline__Campaign__Release__Arguments__{i}"] = arguments[i];
        }
        if (withSampleRuns)
        {
            start.Environment["SAMPLE_RUNS"] = "2";
            start.Environment["SAMPLE_FILES"] = "4";
            start.Environment["SAMPLE_EVENTS"] = "400";
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>The viewer key the host generated under its data directory at first start (no keys are configured).</summary>
    private string? GeneratedViewerKey()
    {
        var file = Path.Combine(_data.Path, "api-keys.json");
        if (!File.Exists(file))
        {
            return null;
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        using var keys = JsonDocument.Parse(File.ReadAllText(file));
        return keys.RootElement.GetProperty("generated-viewer").GetProperty("key").GetString();
    }

    private async Task<Dictionary<string, long>> Totals(HttpClient http)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/summary");
            request.Headers.Add("X-Api-Key", GeneratedViewerKey());
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            var summary = await response.Content.ReadFromJsonAsync<JsonElement>();
            return summary.GetProperty("totals").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        }
        catch (HttpRequestException)
        {
            return [];
        }
    }

    [Fact]
    public async Task Should_finish_every_file_with_no_event_lost_or_doubled()
    {
        const int files = 16;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}") };

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

        var audit = await ProductionAudit.RunAsync(runs, campaign.Selections, campaign.Name, areas, store.Sagas, store.Catalog, CancellationToken.None);

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
