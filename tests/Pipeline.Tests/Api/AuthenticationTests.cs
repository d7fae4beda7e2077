using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed class When_the_admin_api_is_called_with_or_without_a_key : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;

    public async Task InitializeAsync() => _pipeline = await PipelineUnderTest.StartAsync();

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    private const string Run = """{"run":1000,"files":[{"name":"raw/run001000/physics/f1.raw","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""";

    private static async Task AssertProblem(HttpResponseMessage response, HttpStatusCode status)
    {
        Assert.Equal(status, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal((int)status, problem.RootElement.GetProperty("status").GetInt32());
        Assert.False(string.IsNullOrEmpty(problem.RootElement.GetProperty("title").GetString()));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("not-a-key-of-this-installation")]
    public async Task Should_answer_401_with_problem_details_and_do_nothing(string? key)
    {
        using var client = _pipeline.Client(key);

        await AssertProblem(await client.GetAsync("/api/summary"), HttpStatusCode.Unauthorized);
        await AssertProblem(await client.PostAsync("/api/runs", new StringContent(Run, Encoding.UTF8, "application/json")), HttpStatusCode.Unauthorized);

        Assert.Empty(await _pipeline.AllFilesAsync());
    }

    [Fact]
    public async Task Should_let_a_viewer_read_but_answer_403_to_its_actions()
    {
        using var viewer = _pipeline.Client(PipelineUnderTest.ViewerKey);

        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync("/api/summary")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await viewer.GetAsync("/api/files")).StatusCode);
        await AssertProblem(await viewer.PostAsync("/api/runs", new StringContent(Run, Encoding.UTF8, "application/json")), HttpStatusCode.Forbidden);
        await AssertProblem(await viewer.PostAsync($"/api/files/{Guid.NewGuid()}/retry", null), HttpStatusCode.Forbidden);

        Assert.Empty(await _pipeline.AllFilesAsync());
    }

    [Fact]
    public async Task Should_let_an_operator_act()
    {
        using var response = await _pipeline.Client(PipelineUnderTest.OperatorKey).PostAsync("/api/runs", new StringContent(Run, Encoding.UTF8, "application/json"));

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        await Eventually.Until(_pipeline.AllFilesAsync, files => files.Count == 1, TimeSpan.FromMinutes(1), "the run's file to be registered");
    }

    [Fact]
    public async Task Should_leave_health_and_the_api_description_open_and_describe_the_key()
    {
        using var anonymous = _pipeline.Client(null);

        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/health/ready")).StatusCode);
        var document = await anonymous.GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var scheme = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("ApiKey");
        Assert.Equal("apiKey", scheme.GetProperty("type").GetString());
        Assert.Equal("X-Api-Key", scheme.GetProperty("name").GetString());
        Assert.Equal("header", scheme.GetProperty("in").GetString());
        Assert.True(document.GetProperty("security").GetArrayLength() > 0);

        // Every call documents its refusal, actions their 403, and the run registration has a working example.
        foreach (var path in document.GetProperty("paths").EnumerateObject().Where(p => p.Name.StartsWith("/api/", StringComparison.Ordinal)))
        {
            foreach (var operation in path.Value.EnumerateObject())
            {
                var responses = operation.Value.GetProperty("responses");
                Assert.True(responses.TryGetProperty("401", out _), $"{operation.Name} {path.Name} does not document 401");
                if (operation.Name == "post")
                {
                    Assert.True(responses.TryGetProperty("403", out _), $"post {path.Name} does not document 403");
                }
            }
        }
        var example = document.GetProperty("paths").GetProperty("/api/runs").GetProperty("post").GetProperty("requestBody")
            .GetProperty("content").GetProperty("application/json").GetProperty("example");
        using var registered = await _pipeline.Http.PostAsync("/api/runs", new StringContent(example.GetRawText(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Accepted, registered.StatusCode);
    }
}

public sealed class When_no_api_keys_are_configured : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;

    public async Task InitializeAsync() => _pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
    {
        // Take away the test keys: the installation must make its own.
        ["Pipeline:Api:Keys:test-viewer:Key"] = null,
        ["Pipeline:Api:Keys:test-viewer:Role"] = null,
        ["Pipeline:Api:Keys:test-operator:Key"] = null,
        ["Pipeline:Api:Keys:test-operator:Role"] = null,
    });

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    [Fact]
    public async Task Should_generate_keys_readable_by_the_owner_only_that_work_with_their_roles()
    {
        var file = Path.Combine(_pipeline.DataDirectory, "api-keys.json");

        Assert.True(File.Exists(file));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        using var keys = JsonDocument.Parse(await File.ReadAllTextAsync(file));
        var viewer = keys.RootElement.GetProperty("generated-viewer").GetProperty("key").GetString();
        var @operator = keys.RootElement.GetProperty("generated-operator").GetProperty("key").GetString();
        Assert.NotEqual(viewer, @operator);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _pipeline.Client(PipelineUnderTest.OperatorKey).GetAsync("/api/summary")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _pipeline.Client(viewer).GetAsync("/api/summary")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _pipeline.Client(viewer).PostAsync($"/api/files/{Guid.NewGuid()}/retry", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _pipeline.Client(@operator).PostAsync($"/api/files/{Guid.NewGuid()}/retry", null)).StatusCode);
    }
}
