using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed class When_operators_look_at_throughput_and_logs
{
    [Fact]
    public async Task Should_show_what_each_stage_did_this_hour_and_serve_the_job_logs()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);
        var rawBytes = runs.SelectMany(r => r.Files!).Sum(f => f.Size);
        var files = await Eventually.Until(pipeline.AllFilesAsync, all => all.All(f => f.LogNames.Count > 0), TimeSpan.FromSeconds(30), "collected logs");

        var throughput = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/throughput?hours=2");
        var staging = throughput.EnumerateArray().Where(a => a.GetProperty("stage").GetString() == "staging").ToList();
        Assert.Equal(4, staging.Sum(a => a.GetProperty("files").GetInt64()));
        Assert.Equal(rawBytes, staging.Sum(a => a.GetProperty("bytes").GetInt64()));
        var summary = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary");
        var stages = summary.GetProperty("stages").EnumerateArray().ToDictionary(s => s.GetProperty("stage").GetString()!);
        Assert.Equal(4, stages["reconstruction"].GetProperty("filesLast24Hours").GetInt64());
        Assert.Equal(4, stages["collection"].GetProperty("filesLast24Hours").GetInt64());
        Assert.True(stages["archive"].GetProperty("bytesLast24Hours").GetInt64() > 0);
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.GetAsync("/api/throughput?hours=0")).StatusCode);
        // The same steps per minute, for the campaign they belong to; minutes are kept for 6 hours, hours for 35 days.
        var minutes = (await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/throughput?resolution=minute&campaign=prompt&stage=staging")).EnumerateArray().ToList();
        Assert.All(minutes, m => Assert.Equal("prompt", m.GetProperty("campaign").GetString()));
        Assert.All(minutes, m => Assert.Equal(0, m.GetProperty("at").GetDateTimeOffset().Second));
        Assert.Equal(4, minutes.Sum(a => a.GetProperty("files").GetInt64()));
        Assert.Equal(rawBytes, minutes.Sum(a => a.GetProperty("bytes").GetInt64()));
        Assert.Empty((await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/throughput?resolution=minute&campaign=other")).EnumerateArray());
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.GetAsync("/api/throughput?resolution=minute&hours=7")).StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.GetAsync("/api/throughput?resolution=second")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await pipeline.Http.GetAsync("/api/throughput?resolution=hour&hours=840")).StatusCode);

        var detail = await pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/files/{files[0].CorrelationId}");
        var catalogued = detail.GetProperty("catalog").EnumerateArray().ToList();
        Assert.Contains(catalogued, c => c.GetProperty("kind").GetString() == "raw" && c.GetProperty("name").GetString() == files[0].LogicalName);
        Assert.Contains(catalogued, c => c.GetProperty("kind").GetString() == "merged");
        Assert.Equal(files[0].CurrentState, detail.GetProperty("currentState").GetString());
        var log = files[0].LogNames.First(n => n.EndsWith("job.log", StringComparison.Ordinal));
        Assert.Contains($"/api/logs/{log}", detail.GetProperty("logLinks").EnumerateArray().Select(l => l.GetString()));
        using var viewer = pipeline.Client(PipelineUnderTest.ViewerKey);
        var text = await viewer.GetStringAsync($"/api/logs/{log}");
        Assert.Equal(await File.ReadAllTextAsync(pipeline.Areas.Logs.PathOf(log)), text);
        Assert.NotEmpty(text);
        Assert.Equal(HttpStatusCode.NotFound, (await viewer.GetAsync("/api/logs/prompt/nothing-here.log")).StatusCode);
        // Whatever the client or server makes of an encoded climb out of the area, it never reaches the state database.
        foreach (var escape in new[] { "/api/logs/prompt/%2E%2E/%2E%2E/pipeline.db", "/api/logs/..%2F..%2Fpipeline.db", "/api/logs/%2Fetc%2Fpasswd" })
        {
            Assert.Contains((await viewer.GetAsync(escape)).StatusCode, new[] { HttpStatusCode.BadRequest, HttpStatusCode.NotFound });
        }
        Assert.Equal(HttpStatusCode.Unauthorized, (await pipeline.Client(null).GetAsync($"/api/logs/{log}")).StatusCode);
    }
}
