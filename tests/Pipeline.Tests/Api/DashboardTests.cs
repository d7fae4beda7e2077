using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
using Pipeline.Contracts;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed partial class When_an_operator_opens_the_dashboard
{
    [GeneratedRegex("data-metric=\"(?<metric>[^\"]+)\"(?<attributes>[^>]*)>(?<text>[^<]*)<")]
    private static partial Regex Metric();

    [GeneratedRegex("data-value=\"(?<value>[^\"]*)\"")]
    private static partial Regex DataValue();

    /// <summary>Each element the page marked with data-metric: its exact data-value if it has one, else its text.</summary>
    private static Dictionary<string, string> Metrics(string dom) =>
        Metric().Matches(dom).ToDictionary(m => m.Groups["metric"].Value,
            m => DataValue().Match(m.Groups["attributes"].Value) is { Success: true } value ? value.Groups["value"].Value : m.Groups["text"].Value);

    /// <summary>
    /// A run of four files, one of whose raw files does not match its catalogued checksum: it fails, the other three
    /// are archived with their logs collected.
    /// </summary>
    private static async Task<(PipelineUnderTest Pipeline, RunRecorded Run, IReadOnlyList<FileState> Files)> RunWithOneCorruptFileAsync()
    {
        var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?> { ["Pipeline:Campaign:MaxAttempts"] = "1" });
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50)))[0];
        var path = pipeline.Areas.Archive.PathOf(run.Files![0].Name!);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes);
        await pipeline.IngestAsync([run]);
        await pipeline.WaitForFinalAsync(4);
        var files = await Eventually.Until(pipeline.AllFilesAsync, all => all.Count(f => f.CurrentState == "Archived" && f.LogNames.Count > 0) == 3,
            TimeSpan.FromMinutes(1), "three archived files with their logs collected");
        return (pipeline, run, files);
    }

    [Fact]
    public async Task Should_render_in_a_browser_the_numbers_the_api_gives()
    {
        var (pipeline, run, _) = await RunWithOneCorruptFileAsync();
        await using var running = pipeline;
        var summary = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary");

        var dom = await Chromium.DumpDomAsync(new Uri(pipeline.Http.BaseAddress!, $"/#key={PipelineUnderTest.ViewerKey}"), TimeSpan.FromSeconds(15));

        Assert.Contains("data-state=\"ready\"", dom, StringComparison.Ordinal);
        Assert.Contains("data-charts=\"drawn\"", dom, StringComparison.Ordinal);
        var shown = Metrics(dom);
        foreach (var state in summary.GetProperty("states").EnumerateArray())
        {
            Assert.Equal(state.GetProperty("files").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
                shown[$"state:{state.GetProperty("campaign").GetString()}:{state.GetProperty("state").GetString()}"]);
        }
        Assert.Equal("3", shown["state:prompt:Archived"]);
        Assert.Equal("1", shown["state:prompt:Failed"]);
        Assert.Equal(summary.GetProperty("mergedFiles").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture), shown["merged-files"]);
        Assert.Equal(summary.GetProperty("mergedEvents").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture), shown["merged-events"]);
        var failure = Assert.Single(summary.GetProperty("failures").EnumerateArray());
        Assert.Equal("1", shown[$"failure-files:{failure.GetProperty("id").GetString()}"]);
        foreach (var stage in summary.GetProperty("stages").EnumerateArray())
        {
            Assert.Equal(stage.GetProperty("filesLast24Hours").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
                shown[$"stage-files-day:{stage.GetProperty("stage").GetString()}"]);
        }
        Assert.Contains(run.Files![0].Name!, dom, StringComparison.Ordinal);
        var reconstruction = summary.GetProperty("utilisation").EnumerateArray().Single(u => u.GetProperty("stage").GetString() == "reconstruction");
        Assert.Equal($"{reconstruction.GetProperty("busy").GetInt32()}/{reconstruction.GetProperty("capacity").GetInt32()}", shown["busy:reconstruction"]);
        var alerts = await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts");
        Assert.Equal(alerts!.Length.ToString(System.Globalization.CultureInfo.InvariantCulture), shown["alerts"]);
        foreach (var instance in (await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/instances"))!)
        {
            Assert.True(shown.ContainsKey($"instance:{instance.GetProperty("instance").GetString()}"));
        }
        var flow = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/flow");
        foreach (var area in flow.GetProperty("areas").EnumerateArray())
        {
            Assert.Equal(area.GetProperty("usedBytes").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture),
                shown[$"area-used:{area.GetProperty("area").GetString()}"]);
        }
        var movers = flow.GetProperty("movers");
        Assert.Equal($"{movers.GetProperty("inUse").GetInt32()}/{movers.GetProperty("limit").GetInt32()}", shown["movers"]);
        foreach (var dataset in flow.GetProperty("datasets").EnumerateArray())
        {
            Assert.Equal(dataset.GetProperty("ordering").GetString(),
                shown[$"ordering:{dataset.GetProperty("campaign").GetString()}/{dataset.GetProperty("dataset").GetString()}"]);
        }
        foreach (var campaign in (await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/campaigns"))!)
        {
            var name = campaign.GetProperty("campaign").GetString();
            var forecast = campaign.GetProperty("forecast");
            Assert.Equal(forecast.GetProperty("done").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture), shown[$"campaign-done:{name}"]);
            Assert.Equal(forecast.GetProperty("remaining").GetInt64().ToString(System.Globalization.CultureInfo.InvariantCulture), shown[$"campaign-remaining:{name}"]);
        }
        Assert.Equal("3", shown["campaign-done:prompt"]);
    }

    private static string Number(long value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task Should_show_a_run_a_file_and_the_per_minute_throughput_with_the_api_numbers()
    {
        var (pipeline, run, files) = await RunWithOneCorruptFileAsync();
        await using var running = pipeline;
        var failed = files.Single(f => f.CurrentState == "Failed");
        var archived = files.First(f => f.CurrentState == "Archived");

        // The run view: per campaign and state, the files, events and bytes the API counts; the failures by reason.
        var runView = await pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/runs/{run.Run}");
        var dom = await Chromium.DumpDomAsync(new Uri(pipeline.Http.BaseAddress!, $"/#key={PipelineUnderTest.ViewerKey}&run={run.Run}"), TimeSpan.FromSeconds(15));
        Assert.Contains($"data-run=\"{run.Run}\"", dom, StringComparison.Ordinal);
        var shown = Metrics(dom);
        var campaign = Assert.Single(runView.GetProperty("campaigns").EnumerateArray());
        Assert.Equal(4, campaign.GetProperty("files").GetInt32());
        foreach (var state in campaign.GetProperty("states").EnumerateArray())
        {
            var key = $"prompt:{state.GetProperty("state").GetString()}";
            Assert.Equal(Number(state.GetProperty("files").GetInt64()), shown[$"run-files:{key}"]);
            Assert.Equal(Number(state.GetProperty("events").GetInt64()), shown[$"run-events:{key}"]);
            Assert.Equal(Number(state.GetProperty("bytes").GetInt64()), shown[$"run-bytes:{key}"]);
        }
        Assert.Equal("3", shown["run-files:prompt:Archived"]);
        Assert.Equal(Number(files.Where(f => f.CurrentState == "Archived").Sum(f => f.Events)), shown["run-events:prompt:Archived"]);
        Assert.Equal(Number(failed.Size), shown["run-bytes:prompt:Failed"]);
        Assert.Equal("1", shown["run-failure:prompt:0"]);
        Assert.Contains(failed.FailureReason!, dom, StringComparison.Ordinal);
        Assert.Equal("Failed", shown[$"run-file-state:{failed.CorrelationId}"]);
        // The throughput charts plot, per minute, what the API stored for each stage.
        var minutes = (await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/throughput?resolution=minute&hours=6")).EnumerateArray().ToList();
        foreach (var stage in minutes.GroupBy(m => m.GetProperty("stage").GetString()!))
        {
            Assert.Equal(Number(stage.Sum(m => m.GetProperty("files").GetInt64())), shown[$"plotted-files:{stage.Key}"]);
        }
        Assert.Equal("3", shown["plotted-files:staging"]);
        await Chromium.ScreenshotAsync(new Uri(pipeline.Http.BaseAddress!, $"/#key={PipelineUnderTest.ViewerKey}&run={run.Run}"), TimeSpan.FromSeconds(15),
            Chromium.ArtefactPath("dashboard-run.png"));

        // The file page: history, attempts, catalog entries, logs and trace id, as the API gives them.
        var detail = await pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/files/{archived.CorrelationId}");
        var page = new Uri(pipeline.Http.BaseAddress!, $"/#key={PipelineUnderTest.ViewerKey}&file={archived.CorrelationId}");
        shown = Metrics(await Chromium.DumpDomAsync(page, TimeSpan.FromSeconds(15)));
        Assert.Equal(archived.CorrelationId.ToString(), shown["file-id"]);
        Assert.Equal("Archived", shown["file-state"]);
        Assert.Equal(archived.CorrelationId.ToString("N"), shown["file-trace"]);
        Assert.Equal(detail.GetProperty("traceId").GetString(), shown["file-trace"]);
        Assert.Equal(Number(archived.Size), shown["file-size"]);
        var history = detail.GetProperty("history").EnumerateArray().ToList();
        Assert.Equal(history.Count, shown.Keys.Count(k => k.StartsWith("file-history:", StringComparison.Ordinal)));
        Assert.Equal(history[^1].GetProperty("state").GetString(), shown[$"file-history:{history.Count - 1}"]);
        Assert.Equal("Archived", shown["file-attempt-state:1"]);
        foreach (var entry in detail.GetProperty("catalog").EnumerateArray())
        {
            Assert.Equal(entry.GetProperty("name").GetString(), shown[$"file-catalog:{entry.GetProperty("kind").GetString()}:{entry.GetProperty("name").GetString()}"]);
        }
        Assert.Contains(detail.GetProperty("catalog").EnumerateArray(), e => e.GetProperty("kind").GetString() == "merged");
        var fileDom = await Chromium.DumpDomAsync(page, TimeSpan.FromSeconds(15));
        foreach (var log in archived.LogNames)
        {
            Assert.Contains($"data-log=\"{log}\"", fileDom, StringComparison.Ordinal);
        }
        await Chromium.ScreenshotAsync(page, TimeSpan.FromSeconds(15), Chromium.ArtefactPath("dashboard-file.png"));

        // The search box finds a file by its logical name, by its id and by its trace id; the failed file's page says why.
        foreach (var query in new[] { failed.LogicalName, failed.CorrelationId.ToString(), failed.CorrelationId.ToString("N") })
        {
            var found = await Chromium.DumpDomAsync(new Uri(pipeline.Http.BaseAddress!, $"/#key={PipelineUnderTest.ViewerKey}&q={Uri.EscapeDataString(query)}"), TimeSpan.FromSeconds(15));
            Assert.Contains($"data-found=\"{failed.CorrelationId}\"", found, StringComparison.Ordinal);
            var foundMetrics = Metrics(found);
            Assert.Equal(failed.CorrelationId.ToString(), foundMetrics["file-id"]);
            Assert.Equal("Failed", foundMetrics["file-state"]);
            Assert.Equal(failed.FailureReason, System.Net.WebUtility.HtmlDecode(foundMetrics["file-failure"]));
        }
        var none = await Chromium.DumpDomAsync(new Uri(pipeline.Http.BaseAddress!, $"/#key={PipelineUnderTest.ViewerKey}&q=raw/no/such/file.raw"), TimeSpan.FromSeconds(15));
        Assert.Contains("data-found=\"0\"", none, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await pipeline.Http.GetAsync("/api/runs/424242")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.GetAsync("/api/search?q=")).StatusCode);
    }

    [Fact]
    public async Task Should_serve_the_page_and_its_charting_library_from_the_api_itself()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        using var anonymous = pipeline.Client(null);

        var page = await anonymous.GetAsync("/dashboard/");
        var library = await anonymous.GetAsync("/dashboard/chart.umd.min.js");

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("script-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        var html = await page.Content.ReadAsStringAsync();
        Assert.DoesNotContain("http://", html, StringComparison.Ordinal);
        Assert.DoesNotContain("https://", html, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, library.StatusCode);
        Assert.Contains("Chart.js v4", await library.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.GetAsync("/dashboard/secrets.json")).StatusCode);
        Assert.Equal(HttpStatusCode.Redirect, (await new HttpClient(new HttpClientHandler { AllowAutoRedirect = false }) { BaseAddress = pipeline.Http.BaseAddress }.GetAsync("/")).StatusCode);
    }
}
