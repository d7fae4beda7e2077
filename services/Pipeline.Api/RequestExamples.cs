using System.Text.Json.Nodes;
using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Pipeline.Api;

/// <summary>Example request bodies in the API description, so Swagger UI's "Try it out" starts from a valid request.</summary>
public sealed class RequestExamples : IOperationFilter
{
    private static readonly Dictionary<string, string> Examples = new(StringComparer.Ordinal)
    {
        ["RegisterRun"] = """
            {"run": 1000, "recordedAt": "2026-11-25T16:00:00Z", "files": [
              {"name": "raw/run001000/physics/run001000_physics_0001.raw", "stream": "physics", "section": 1, "size": 52004, "adler32": "74ffa49a", "events": 100}]}
            """,
        ["RetryFile"] = """{"extraAttempts": 2, "timeoutSeconds": 86400}""",
        ["RetryFailedFiles"] = """{"campaign": "prompt", "signature": "3f9a1c0b7e21", "runFrom": 1000, "runTo": 1099, "extraAttempts": 1}""",
    };

    public void Apply(OpenApiOperation operation, OperationFilterContext context)
    {
        if (operation.OperationId is { } id && Examples.TryGetValue(id, out var example)
            && operation.RequestBody?.Content is { } content && content.TryGetValue("application/json", out var json) && json is OpenApiMediaType media)
        {
            media.Example = JsonNode.Parse(example);
        }
    }
}
