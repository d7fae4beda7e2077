using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.RegularExpressions;
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

    [Fact]
    public async Task Should_render_in_a_browser_the_numbers_the_api_gives()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?> { ["Pipeline:Campaign:MaxAttempts"] = "1" });
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50)))[0];
        // One raw file does not match its catalogued checksum: it fails, the others are archived.
        var path = pipeline.Areas.Archive.PathOf(run.Files![0].Name!);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes);
        await pipeline.IngestAsync([run]);
        await pipeline.WaitForFinalAsync(4);
        await Eventually.Until(pipeline.AllFilesAsync, files => files.Count(f => f.CurrentState == "Archived") == 3, TimeSpan.FromMinutes(1), "three archived files");
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
        Assert.Contains(run.Files[0].Name!, dom, StringComparison.Ordinal);
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
