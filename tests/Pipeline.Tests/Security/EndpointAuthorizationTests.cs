using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Security;

/// <summary>
/// Every call the API describes, found in its OpenAPI document rather than listed by hand, so a new endpoint
/// cannot escape the check: reads need a key, actions an operator's key, and a refusal changes nothing.
/// </summary>
public sealed class When_any_endpoint_is_called_without_the_right_key : IAsyncLifetime
{
    private PipelineUnderTest _pipeline = null!;

    public async Task InitializeAsync() => _pipeline = await PipelineUnderTest.StartAsync();

    public async Task DisposeAsync() => await _pipeline.DisposeAsync();

    private static readonly string[] Actions = ["post", "put", "delete", "patch"];

    private sealed record Operation(string Method, string Path, string Url);

    private async Task<IReadOnlyList<Operation>> DescribedOperationsAsync()
    {
        var document = await _pipeline.Client(null).GetFromJsonAsync<JsonElement>("/swagger/v1/swagger.json");
        var operations = new List<Operation>();
        foreach (var path in document.GetProperty("paths").EnumerateObject().Where(p => p.Name.StartsWith("/api/", StringComparison.Ordinal)))
        {
            foreach (var operation in path.Value.EnumerateObject().Where(o => o.Name != "parameters"))
            {
                operations.Add(new Operation(operation.Name, path.Name, Fill(path.Name, operation.Value)));
            }
        }
        return operations;
    }

    // Path parameters get a value of their declared type, so that the route matches and authorization is what answers.
    private static string Fill(string path, JsonElement operation)
    {
        var url = path;
        foreach (var parameter in operation.TryGetProperty("parameters", out var parameters) ? parameters.EnumerateArray() : Enumerable.Empty<JsonElement>())
        {
            if (parameter.GetProperty("in").GetString() != "path")
            {
                continue;
            }
            var schema = parameter.GetProperty("schema");
            var value = schema.TryGetProperty("format", out var format) && format.GetString() == "uuid" ? Guid.NewGuid().ToString()
                : schema.TryGetProperty("type", out var type) && type.GetString() == "integer" ? "1000"
                : "reconstruction";
            url = url.Replace("{" + parameter.GetProperty("name").GetString() + "}", value, StringComparison.Ordinal);
        }
        return url;
    }

    private static HttpRequestMessage Request(Operation operation) => new(new HttpMethod(operation.Method.ToUpperInvariant()), operation.Url)
    {
        Content = Actions.Contains(operation.Method) ? new StringContent("{}", Encoding.UTF8, "application/json") : null,
    };

    [Fact]
    public async Task Should_describe_the_actions_operators_rely_on()
    {
        var operations = await DescribedOperationsAsync();

        // The enumeration finds the API's actions at all: the check below would pass vacuously on an empty document.
        var actions = operations.Where(o => Actions.Contains(o.Method)).Select(o => $"{o.Method} {o.Path}").ToList();
        Assert.Contains("post /api/runs", actions);
        Assert.Contains("post /api/campaigns", actions);
        Assert.Contains("put /api/flow/movers", actions);
        Assert.Contains("delete /api/flow/areas/{area}", actions);
        Assert.True(actions.Count >= 15, $"only {actions.Count} actions described: {string.Join(", ", actions)}");
    }

    [Fact]
    public async Task Should_answer_401_to_every_call_without_a_key_or_with_an_unknown_one()
    {
        foreach (var key in new[] { null, "not-a-key-of-this-installation" })
        {
            using var client = _pipeline.Client(key);
            foreach (var operation in await DescribedOperationsAsync())
            {
                using var response = await client.SendAsync(Request(operation));
                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{operation.Method} {operation.Url} with key {key ?? "none"}: {response.StatusCode}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            }
        }
        await AssertNothingChangedAsync();
    }

    [Fact]
    public async Task Should_answer_403_to_every_action_with_a_viewers_key_and_let_it_read()
    {
        using var viewer = _pipeline.Client(PipelineUnderTest.ViewerKey);
        foreach (var operation in await DescribedOperationsAsync())
        {
            using var response = await viewer.SendAsync(Request(operation));
            if (Actions.Contains(operation.Method))
            {
                Assert.True(response.StatusCode == HttpStatusCode.Forbidden, $"{operation.Method} {operation.Url} as a viewer: {response.StatusCode}");
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            }
            else
            {
                // A read is answered (found or not), never refused to a viewer and never a server error.
                Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.NotFound or HttpStatusCode.BadRequest,
                    $"{operation.Method} {operation.Url} as a viewer: {response.StatusCode}");
            }
        }
        await AssertNothingChangedAsync();
    }

    private async Task AssertNothingChangedAsync()
    {
        Assert.Empty(await _pipeline.AllFilesAsync());
        Assert.Empty(await _pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/runs") ?? []);
        var stages = await _pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/stages");
        Assert.All(stages!, s => Assert.False(s.GetProperty("paused").GetBoolean(), s.ToString()));
        var campaigns = await _pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/campaigns");
        Assert.All(campaigns!, c => Assert.Equal("active", c.GetProperty("status").GetString()));
        Assert.Empty(await _pipeline.Services.GetRequiredService<IFlowStore>().ListSettingsAsync(CancellationToken.None));
        Assert.Empty(await _pipeline.Services.GetRequiredService<ICampaignStore>().ListCalibrationsAsync(null, CancellationToken.None));
    }
}
