using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed class When_a_run_is_posted_with_bad_input : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;

    public async Task InitializeAsync() => _pipeline = await PipelineUnderTest.StartAsync();

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    private const string GoodFile = """{"name":"raw/run001000/physics/f1.raw","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}""";

    public static TheoryData<string, string> BadBodies => new()
    {
        { "{}", "run" },
        { """{"run":1000}""", "files" },
        { """{"run":1000,"files":[]}""", "files" },
        { """{"run":-3,"files":[""" + GoodFile + "]}", "run" },
        { """{"run":1000,"files":[{"name":"raw/a.raw","stream":"physics","section":1,"size":-100,"adler32":"0a0b0c0d","events":5}]}""", "files[0].size" },
        { """{"run":1000,"files":[{"name":"raw/a.raw","stream":"physics","section":1,"size":100,"adler32":"zzzz","events":5}]}""", "files[0].adler32" },
        { """{"run":1000,"files":[{"name":"../../etc/passwd","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""", "files[0].name" },
        { """{"run":1000,"files":[{"name":"/etc/passwd","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""", "files[0].name" },
        { """{"run":1000,"files":[{"name":"raw/a.raw","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""", "files[0].stream" },
        { """{"run":1000,"files":[""" + GoodFile + "," + GoodFile + "]}", "files[1].name" },
    };

    [Theory]
    [MemberData(nameof(BadBodies))]
    public async Task Should_answer_400_with_problem_details_naming_the_field_and_register_nothing(string body, string field)
    {
        using var response = await _pipeline.Http.PostAsync("/api/runs", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.True(problem.RootElement.GetProperty("errors").TryGetProperty(field, out _), $"no error for {field}: {problem.RootElement}");
        Assert.Empty(await _pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/runs") ?? []);
        Assert.Empty((await _pipeline.AllFilesAsync()));
    }

    [Theory]
    [InlineData("""{"run": 1000, "files": [""")]
    [InlineData("""{"run": "one thousand"}""")]
    [InlineData("not json at all")]
    public async Task Should_answer_400_with_problem_details_for_a_body_that_is_not_a_run_event(string body)
    {
        using var response = await _pipeline.Http.PostAsync("/api/runs", new StringContent(body, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Empty((await _pipeline.AllFilesAsync()));
    }
}

public sealed class When_operators_use_the_admin_api : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;

    public async Task InitializeAsync() => _pipeline = await PipelineUnderTest.StartAsync();

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    [Fact]
    public async Task Should_register_a_run_once_and_refuse_it_with_different_files()
    {
        var run = (await _pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 20)))[0];

        using var first = await _pipeline.Http.PostAsJsonAsync("/api/runs", run);
        using var again = await _pipeline.Http.PostAsJsonAsync("/api/runs", run);
        using var changed = await _pipeline.Http.PostAsJsonAsync("/api/runs", run with { Files = [run.Files![0] with { Size = 1 }] });

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.False((await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("alreadyRegistered").GetBoolean());
        Assert.Equal(HttpStatusCode.Accepted, again.StatusCode);
        Assert.True((await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("alreadyRegistered").GetBoolean());
        Assert.Equal(HttpStatusCode.Conflict, changed.StatusCode);
        Assert.Equal("application/problem+json", changed.Content.Headers.ContentType?.MediaType);

        await _pipeline.WaitForFinalAsync(run.Files!.Count);
        var files = await _pipeline.AllFilesAsync();
        Assert.Equal(run.Files!.Count, files.Count);
        Assert.All(files, f => Assert.Single(f.History, h => h.State == "Registered"));
    }

    [Fact]
    public async Task Should_show_files_their_history_the_summary_and_the_catalog()
    {
        var run = (await _pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50)))[0];
        using var posted = await _pipeline.Http.PostAsJsonAsync("/api/runs", run);
        Assert.Equal(HttpStatusCode.Accepted, posted.StatusCode);
        await _pipeline.WaitForFinalAsync(run.Files!.Count);

        var page = await _pipeline.Http.GetFromJsonAsync<JsonElement>("/api/files?state=Archived&limit=2");
        Assert.Equal(2, page.GetProperty("files").GetArrayLength());
        var next = page.GetProperty("next").GetString();
        Assert.NotNull(next);
        var rest = await _pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/files?state=Archived&after={next}");
        Assert.Equal(run.Files!.Count - 2, rest.GetProperty("files").GetArrayLength());

        var id = page.GetProperty("files")[0].GetProperty("id").GetString();
        // Log collection runs beside merging, so the log location may land just after the file is archived.
        var file = await Eventually.Until(
            () => _pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/files/{id}"),
            f => f.GetProperty("logNames").GetArrayLength() >= 1,
            TimeSpan.FromSeconds(30),
            "the job's logs to be collected");
        Assert.Equal("Archived", file.GetProperty("currentState").GetString());
        Assert.True(file.GetProperty("history").GetArrayLength() >= 7);

        var summary = await _pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary");
        Assert.Equal(run.Files!.Count, summary.GetProperty("totals").GetProperty("Archived").GetInt32());
        Assert.True(summary.GetProperty("mergedFiles").GetInt32() >= 1);

        var raw = await _pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/catalog?name={Uri.EscapeDataString(run.Files![0].Name!)}");
        Assert.Equal(run.Files![0].Adler32, raw[0].GetProperty("adler32").GetString());

        var datasets = await _pipeline.Http.GetFromJsonAsync<JsonElement>("/api/datasets");
        Assert.True(datasets.GetArrayLength() >= 1);
    }

    [Fact]
    public async Task Should_answer_unknown_files_and_impossible_actions_with_problem_details()
    {
        using var missing = await _pipeline.Http.GetAsync($"/api/files/{Guid.NewGuid()}");
        using var retryMissing = await _pipeline.Http.PostAsync($"/api/files/{Guid.NewGuid()}/retry", null);
        using var badCursor = await _pipeline.Http.GetAsync("/api/files?after=%%%");
        using var badLimit = await _pipeline.Http.GetAsync("/api/files?limit=0");
        using var nothing = await _pipeline.Http.GetAsync("/api/catalog?name=raw/none.raw");

        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, retryMissing.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badCursor.StatusCode);
        Assert.Equal(HttpStatusCode.BadRequest, badLimit.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, nothing.StatusCode);
        foreach (var response in new[] { missing, retryMissing, badCursor, badLimit, nothing })
        {
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        }

        var run = (await _pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 5)))[0];
        await _pipeline.IngestAsync([run]);
        var archived = await _pipeline.WaitForFinalAsync(run.Files!.Count);
        var id = (await _pipeline.AllFilesAsync())[0].CorrelationId;
        using var notFailed = await _pipeline.Http.PostAsync($"/api/files/{id}/retry", null);
        Assert.Equal(HttpStatusCode.Conflict, notFailed.StatusCode);
    }

    [Fact]
    public async Task Should_serve_swagger_and_health()
    {
        var document = await _pipeline.Http.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var paths = document.GetProperty("paths");
        foreach (var path in new[] { "/api/runs", "/api/files", "/api/files/{id}", "/api/files/{id}/retry", "/api/summary", "/api/catalog", "/api/datasets" })
        {
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is not documented");
        }
        using var ui = await _pipeline.Http.GetAsync("/swagger/index.html");
        using var ready = await _pipeline.Http.GetAsync("/health/ready");
        using var live = await _pipeline.Http.GetAsync("/health/live");
        Assert.Equal(HttpStatusCode.OK, ui.StatusCode);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }
}
