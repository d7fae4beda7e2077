using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Security;

/// <summary>
/// A fixed corpus of malformed requests to every action of the API: each gets a 4xx with problem details, never a
/// 5xx, and none changes anything that is stored.
/// </summary>
public sealed class When_the_api_is_sent_malformed_requests : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;

    public async Task InitializeAsync() => _pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
    {
        ["Pipeline:Api:MaxRequestBodyBytes"] = (1 << 20).ToString(System.Globalization.CultureInfo.InvariantCulture),
    });

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    public sealed record Case(string Method, string Path, string? Body, string ContentType = "application/json", byte[]? Bytes = null)
    {
        public override string ToString() => $"{Method} {Path} {(Body is { Length: > 80 } text ? text[..80] + "…" : Body)}";
    }

    private static readonly string[] JsonActions =
    [
        "POST /api/runs",
        "POST /api/campaigns",
        "PUT /api/campaigns/prompt/priority",
        "POST /api/calibrations",
        "POST /api/calibrations/align-1/supersede",
        "POST /api/releases/sample-1.0/supersede",
        "POST /api/stale/reprocess",
        "PUT /api/flow/areas/cache",
        "PUT /api/flow/movers",
        "PUT /api/flow/datasets/muon",
    ];

    /// <summary>Bodies that are not the JSON object any action takes.</summary>
    private static readonly string[] NotAnObject =
    [
        "",
        "{",
        "}",
        "not json",
        "[]",
        "[1,2]",
        "123",
        "-1",
        "true",
        "\"text\"",
        "{\"a\":",
        "{'single':'quotes'}",
        "{\"trailing\":1,}",
        "{\"a\":1}{\"b\":2}",
        new string('[', 2000) + new string(']', 2000),
        "{\"unterminated\":\"abc",
    ];

    private const string File1 = """{"name":"raw/run001000/physics/f1.raw","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}""";

    private static string Run(string file) => "{\"run\":1000,\"files\":[" + file + "]}";

    private static string FileWith(string field, string json) =>
        JsonSerializer.Serialize(JsonSerializer.Deserialize<Dictionary<string, JsonElement>>(File1)!
            .ToDictionary(f => f.Key, f => f.Key == field ? JsonDocument.Parse(json).RootElement : f.Value));

    /// <summary>Run events that are JSON objects but not acceptable ones.</summary>
    private static IEnumerable<string> BadRuns()
    {
        yield return "{}";
        yield return "{\"run\":0,\"files\":[" + File1 + "]}";
        yield return "{\"run\":-1,\"files\":[" + File1 + "]}";
        yield return "{\"run\":2147483648,\"files\":[" + File1 + "]}";
        yield return "{\"run\":1e3,\"files\":[" + File1 + "]}";
        yield return "{\"run\":\"1000\",\"files\":[" + File1 + "]}";
        yield return "{\"run\":1000}";
        yield return "{\"run\":1000,\"files\":[]}";
        yield return "{\"run\":1000,\"files\":{}}";
        yield return "{\"run\":1000,\"files\":[null]}";
        yield return "{\"run\":1000,\"files\":[1]}";
        yield return "{\"run\":1000,\"files\":[" + File1 + "," + File1 + "]}";
        foreach (var name in new[] { "../etc/passwd", "raw/../../etc/passwd", "/etc/passwd", "raw/./a.raw", "raw//a.raw", "raw/a\u0000.raw",
            "raw/a\n.raw", "raw/a\r.raw", "raw\\a.raw", "", " ", ".", "..", "raw/", "raw/a.raw/..", "C:/a.raw", new string('a', 5000) })
        {
            yield return Run(FileWith("name", JsonSerializer.Serialize(name)));
        }
        foreach (var size in new[] { "0", "-1", "-9223372036854775808", "9223372036854775808", "1.5", "\"100\"", "null" })
        {
            yield return Run(FileWith("size", size));
        }
        foreach (var adler in new[] { "\"\"", "\"zzzzzzzz\"", "\"0a0b0c0\"", "\"0a0b0c0d0\"", "\"0x0b0c0d\"", "\" a0b0c0d\"", "12345678", "null" })
        {
            yield return Run(FileWith("adler32", adler));
        }
        foreach (var stream in new[] { "\"\"", "\"a b\"", "\"../x\"", "\"a/b\"", "\"" + new string('s', 65) + "\"", "null", "7" })
        {
            yield return Run(FileWith("stream", stream));
        }
        foreach (var events in new[] { "-1", "\"5\"", "1.5", "9223372036854775808" })
        {
            yield return Run(FileWith("events", events));
        }
        foreach (var section in new[] { "-1", "\"1\"", "2147483648" })
        {
            yield return Run(FileWith("section", section));
        }
    }

    private static IEnumerable<string> BadCampaigns()
    {
        const string release = "\"release\":{\"version\":\"v1\",\"executable\":\"/bin/true\"}";
        const string datasets = "\"datasets\":{\"muon\":3}";
        yield return "{}";
        yield return "{\"name\":\"c1\"}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + datasets + "}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + "}";
        yield return "{\"name\":\"c1\",\"kind\":\"sideways\"," + release + "," + datasets + "}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + ",\"datasets\":{}}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + ",\"datasets\":{\"muon\":-1}}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + ",\"datasets\":{\"../x\":3}}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + "," + datasets + ",\"priority\":0}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + "," + datasets + ",\"priority\":\"high\"}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\"," + release + "," + datasets + ",\"maxAttempts\":-3}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\",\"release\":{\"version\":\"v1\",\"executable\":\"/bin/true\",\"arguments\":[\"{nosuch}\"]}," + datasets + "}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\",\"release\":{\"version\":\"v1\"}," + datasets + "}";
        yield return "{\"name\":\"c1\",\"kind\":\"prompt\",\"release\":\"v1\"," + datasets + "}";
        foreach (var name in new[] { "", "a b", "../up", "a/b", "a\u0000b", "a\nb", new string('n', 65), "é" })
        {
            yield return "{\"name\":" + JsonSerializer.Serialize(name) + ",\"kind\":\"prompt\"," + release + "," + datasets + "}";
        }
        // A reprocessing campaign that selects nothing catalogued.
        yield return "{\"name\":\"c2\",\"kind\":\"reprocessing\"," + release + "," + datasets + ",\"selection\":{\"runFrom\":900000,\"runTo\":900001}}";
    }

    public static IEnumerable<Case> Corpus()
    {
        foreach (var action in JsonActions)
        {
            var (method, path) = (action.Split(' ')[0], action.Split(' ')[1]);
            foreach (var body in NotAnObject)
            {
                yield return new Case(method, path, body);
            }
            // Not JSON at all, by its content type, and bytes that are not UTF-8.
            yield return new Case(method, path, "run=1000", "application/x-www-form-urlencoded");
            yield return new Case(method, path, "{}", "text/plain");
            yield return new Case(method, path, null, "application/json", [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D]);
        }
        foreach (var body in BadRuns())
        {
            yield return new Case("POST", "/api/runs", body);
        }
        foreach (var body in BadCampaigns())
        {
            yield return new Case("POST", "/api/campaigns", body);
        }
        foreach (var body in new[] { "{}", "{\"priority\":0}", "{\"priority\":1001}", "{\"priority\":-5}", "{\"priority\":\"3\"}", "{\"priority\":2.5}" })
        {
            yield return new Case("PUT", "/api/campaigns/prompt/priority", body);
        }
        foreach (var body in new[] { "{}", "{\"tag\":\"a\"}", "{\"tag\":\"a\",\"runFrom\":5,\"runTo\":4}", "{\"tag\":\"\",\"runFrom\":1,\"runTo\":2}",
            "{\"tag\":\"a b/../c\",\"runFrom\":1,\"runTo\":2}", "{\"tag\":\"a\",\"runFrom\":-1,\"runTo\":2}", "{\"tag\":\"a\",\"runFrom\":\"1\",\"runTo\":2}" })
        {
            yield return new Case("POST", "/api/calibrations", body);
        }
        foreach (var body in new[] { "{}", "{\"by\":\"\"}", "{\"by\":7}" })
        {
            yield return new Case("POST", "/api/releases/sample-1.0/supersede", body);
            yield return new Case("POST", "/api/calibrations/align-1/supersede", body);
        }
        foreach (var body in new[] { "{}", "{\"name\":\"r1\"}", "{\"name\":\"r1\",\"campaign\":\"no-such-campaign\"}", "{\"name\":\"../r\",\"campaign\":\"prompt\"}" })
        {
            yield return new Case("POST", "/api/stale/reprocess", body);
        }
        foreach (var body in new[] { "{}", "{\"quotaBytes\":-1}", "{\"quotaBytes\":100,\"highWater\":1.5}", "{\"quotaBytes\":100,\"highWater\":0.5,\"lowWater\":0.8}", "{\"quotaBytes\":\"big\"}" })
        {
            yield return new Case("PUT", "/api/flow/areas/cache", body);
        }
        yield return new Case("PUT", "/api/flow/areas/no-such-area", "{\"quotaBytes\":100000}");
        yield return new Case("DELETE", "/api/flow/areas/no-such-area", null);
        foreach (var body in new[] { "{}", "{\"limit\":0}", "{\"limit\":-2}", "{\"limit\":\"two\"}", "{\"limit\":\"2\"}", "{\"limit\":100000}" })
        {
            yield return new Case("PUT", "/api/flow/movers", body);
        }
        foreach (var body in new[] { "{}", "{\"ordering\":\"sideways\"}", "{\"ordering\":7}", "{\"copies\":[\"no-such-area\"]}" })
        {
            yield return new Case("PUT", "/api/flow/datasets/muon", body);
        }
        // Unknown things: 404, not 500.
        yield return new Case("POST", $"/api/files/{Guid.NewGuid()}/retry", null);
        yield return new Case("POST", $"/api/files/{Guid.NewGuid()}/retry", "{\"extraAttempts\":1}");
        yield return new Case("POST", "/api/files/not-a-guid/retry", null);
        yield return new Case("GET", $"/api/files/{Guid.NewGuid()}", null);
        yield return new Case("GET", "/api/campaigns/no-such-campaign", null);
        yield return new Case("GET", "/api/campaigns/no-such-campaign/audit", null);
        yield return new Case("POST", "/api/campaigns/no-such-campaign/cancel", null);
        yield return new Case("PUT", "/api/campaigns/no-such-campaign/priority", "{\"priority\":2}");
        yield return new Case("POST", "/api/stages/no-such-stage/pause", null);
        yield return new Case("POST", "/api/stages/no-such-stage/resume", null);
        yield return new Case("POST", "/api/stages/no-such-stage/drain", null);
        yield return new Case("GET", "/api/logs/../../etc/passwd", null);
        yield return new Case("GET", "/api/logs/%2e%2e/%2e%2e/etc/passwd", null);
        yield return new Case("GET", "/api/logs/no/such/log.txt", null);
        yield return new Case("GET", "/api/files?state=%00", null);
        yield return new Case("GET", "/api/files?limit=-1", null);
        yield return new Case("GET", "/api/files?after=not-a-cursor", null);
        yield return new Case("GET", "/api/files?runFrom=abc", null);
        // Bodies over the limit: announced, and not announced (chunked).
        yield return new Case("POST", "/api/runs", "{\"run\":1000,\"files\":[" + string.Join(',', Enumerable.Repeat(File1, 12_000)) + "]}");
    }

    private async Task<string> SnapshotAsync()
    {
        var store = _pipeline.Services.GetRequiredService<StoreBackend>();
        var files = await store.Sagas.ListAsync(new FileQuery(Limit: 1000), CancellationToken.None);
        var snapshot = new
        {
            files = files.Files.Select(f => $"{f.Id} {f.State}"),
            runs = (await store.Runs.ListRunsAsync(CancellationToken.None)).Select(r => r.Run),
            campaigns = (await store.Campaigns.ListCampaignsAsync(CancellationToken.None)).Select(c => $"{c.Definition.Name} v{c.Version} p{c.Definition.EffectivePriority} {c.Cancelled}"),
            calibrations = (await store.Campaigns.ListCalibrationsAsync(null, CancellationToken.None)).Select(c => $"{c.Tag} {c.RunFrom}-{c.RunTo}"),
            settings = (await store.Flow.ListSettingsAsync(CancellationToken.None)).Select(s => $"{s.Key}={s.Value}"),
            paused = (await store.Control.ListPausedAsync(CancellationToken.None)).Select(p => p.Stage),
            raw = (await store.Catalog.ListAsync(CatalogEntry.Raw, null, CancellationToken.None)).Count,
            merged = (await store.Catalog.ListAsync(CatalogEntry.Merged, null, CancellationToken.None)).Count,
        };
        return JsonSerializer.Serialize(snapshot);
    }

    [Fact]
    public async Task Should_answer_every_case_of_the_corpus_with_a_4xx_problem_and_change_nothing()
    {
        // Something stored to stay unchanged: the configured campaign and a registered run's files.
        var run = (await _pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 10)))[0];
        await _pipeline.IngestAsync([run]);
        await _pipeline.WaitForFinalAsync(2);
        var before = await SnapshotAsync();
        var corpus = Corpus().ToList();
        Assert.True(corpus.Count >= 200, $"the corpus has {corpus.Count} cases");

        var wrong = new List<string>();
        foreach (var @case in corpus)
        {
            // Asks before sending a body, as a careful client does: a body refused unread is then refused unsent.
            using var request = new HttpRequestMessage(new HttpMethod(@case.Method), @case.Path) { Headers = { ExpectContinue = true } };
            if (@case.Bytes is { } bytes)
            {
                request.Content = new ByteArrayContent(bytes);
                request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(@case.ContentType);
            }
            else if (@case.Body is { } body)
            {
                request.Content = new StringContent(body, Encoding.UTF8, @case.ContentType);
            }
            using var response = await _pipeline.Http.SendAsync(request);
            var status = (int)response.StatusCode;
            var type = response.Content.Headers.ContentType?.MediaType;
            if (status is < 400 or >= 500 || type != "application/problem+json")
            {
                wrong.Add($"{@case}: {status} {type} {Truncate(await response.Content.ReadAsStringAsync())}");
            }
        }

        Assert.True(wrong.Count == 0, $"{wrong.Count} of {corpus.Count} cases answered wrongly:\n{string.Join('\n', wrong)}");
        Assert.Equal(before, await SnapshotAsync());
    }

    [Fact]
    public async Task Should_refuse_a_body_over_the_limit_with_413_whether_or_not_its_length_is_announced()
    {
        var big = "{\"run\":1000,\"files\":[" + string.Join(',', Enumerable.Repeat(File1, 12_000)) + "]}";
        using var announcedRequest = new HttpRequestMessage(HttpMethod.Post, "/api/runs")
        {
            Content = new StringContent(big, Encoding.UTF8, "application/json"),
            Headers = { ExpectContinue = true },
        };
        using var announced = await _pipeline.Http.SendAsync(announcedRequest);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, announced.StatusCode);
        Assert.Equal("application/problem+json", announced.Content.Headers.ContentType?.MediaType);

        var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(big)));
        chunked.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/runs") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        // The server stops reading at the limit, answers 413 and closes the connection; a client still sending may
        // see the close before the answer. Either way the body is refused and nothing of it is applied.
        try
        {
            using var streamed = await _pipeline.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, streamed.StatusCode);
        }
        catch (HttpRequestException ex) when (ex.InnerException is HttpIOException or IOException)
        {
        }
        Assert.Empty(await _pipeline.AllFilesAsync());
        Assert.Empty(await _pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/runs") ?? []);
    }

    [Fact]
    public async Task Should_register_a_run_once_however_many_identical_requests_arrive_at_once()
    {
        var run = (await _pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 10)))[0];

        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => _pipeline.Http.PostAsJsonAsync("/api/runs", run)));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Accepted, r.StatusCode));
        var fresh = 0;
        foreach (var response in responses)
        {
            fresh += (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("alreadyRegistered").GetBoolean() ? 0 : 1;
        }
        Assert.Equal(1, fresh);
        await _pipeline.WaitForFinalAsync(4);
        Assert.Equal(4, (await _pipeline.AllFilesAsync()).Count);
        Assert.Single(await _pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/runs") ?? []);
    }

    [Fact]
    public async Task Should_create_a_campaign_once_however_many_identical_requests_arrive_at_once()
    {
        var definition = new
        {
            name = "concurrent",
            kind = "prompt",
            release = new { version = "v1", executable = "{appdir}/Pipeline.SampleExperiment" },
            datasets = new Dictionary<string, uint> { ["muon"] = 3 },
        };

        var responses = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => _pipeline.Http.PostAsJsonAsync("/api/campaigns", definition)));

        var statuses = responses.Select(r => r.StatusCode).ToList();
        Assert.Equal(1, statuses.Count(s => s == HttpStatusCode.Created));
        Assert.Equal(11, statuses.Count(s => s == HttpStatusCode.OK));
        var campaigns = await _pipeline.Services.GetRequiredService<ICampaignStore>().ListCampaignsAsync(CancellationToken.None);
        Assert.Single(campaigns, c => c.Definition.Name == "concurrent");
    }

    private static string Truncate(string text) => text.Length > 300 ? text[..300] + "…" : text;
}
