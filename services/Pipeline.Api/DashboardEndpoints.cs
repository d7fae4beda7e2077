using System.Reflection;

namespace Pipeline.Api;

/// <summary>
/// The production dashboard at / : a page, its script and style, and the charting library, all embedded in
/// this assembly. The page itself holds no data; it reads the API with the key the user gives it.
/// </summary>
public static class DashboardEndpoints
{
    private static readonly Assembly Resources = typeof(DashboardEndpoints).Assembly;

    private static readonly Dictionary<string, string> Types = new(StringComparer.Ordinal)
    {
        ["index.html"] = "text/html; charset=utf-8",
        ["dashboard.js"] = "text/javascript; charset=utf-8",
        ["dashboard.css"] = "text/css; charset=utf-8",
        ["chart.umd.min.js"] = "text/javascript; charset=utf-8",
    };

    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/", () => TypedResults.Redirect("/dashboard/")).ExcludeFromDescription();
        endpoints.MapGet("/dashboard/{file?}", (string? file, HttpContext http) => Serve(file ?? "index.html", http)).ExcludeFromDescription();
        return endpoints;
    }

    private static IResult Serve(string file, HttpContext http)
    {
        if (!Types.TryGetValue(file, out var type) || Resources.GetManifestResourceStream($"dashboard/{file}") is not { } content)
        {
            return TypedResults.Problem($"The dashboard has no file '{file}'.", statusCode: StatusCodes.Status404NotFound, title: "Not found");
        }
        // Only this server's scripts run on the page, and it talks only to this server.
        http.Response.Headers.ContentSecurityPolicy =
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";
        http.Response.Headers.XContentTypeOptions = "nosniff";
        return TypedResults.Stream(content, type);
    }
}
