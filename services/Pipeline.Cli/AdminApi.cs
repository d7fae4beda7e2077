using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Pipeline.Cli;

/// <summary>
/// The admin API as the command line calls it: JSON in and out, and every refusal turned into one sentence from
/// its problem details.
/// </summary>
public sealed class AdminApi(HttpClient http, ConnectionSettings settings)
{
    public const string KeyHeader = "X-Api-Key";

    public static AdminApi Create(ConnectionSettings settings)
    {
        // Audits and reconciliations of a large campaign take minutes; the caller's Ctrl+C ends any call.
        var http = new HttpClient { BaseAddress = settings.Url, Timeout = TimeSpan.FromMinutes(30) };
        http.DefaultRequestHeaders.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
        if (settings.ApiKey is not null)
        {
            http.DefaultRequestHeaders.Add(KeyHeader, settings.ApiKey);
        }
        return new AdminApi(http, settings);
    }

    public Uri Url => settings.Url;

    /// <summary>A path with its query, every value escaped.</summary>
    public static string WithQuery(string path, IEnumerable<(string Name, object Value)> query)
    {
        var parts = query.Select(q => $"{q.Name}={Uri.EscapeDataString(Convert.ToString(q.Value, CultureInfo.InvariantCulture) ?? "")}").ToList();
        return parts.Count == 0 ? path : $"{path}?{string.Join('&', parts)}";
    }

    public Task<JsonElement> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<JsonElement> PostAsync(string path, object? body, CancellationToken ct) =>
        SendAsync(HttpMethod.Post, path, body is null ? null : JsonSerializer.Serialize(body, Json), ct);

    public async Task<JsonElement> SendAsync(HttpMethod method, string path, string? jsonBody, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        if (jsonBody is not null)
        {
            request.Content = new StringContent(jsonBody, Encoding.UTF8, "application/json");
        }
        using var response = await CallAsync(request, HttpCompletionOption.ResponseContentRead, ct);
        if (response.Content.Headers.ContentLength == 0)
        {
            // An answer with no body (a 202 with nothing to say) is an empty object, not a parse error.
            return JsonSerializer.SerializeToElement(new { });
        }
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        using var document = await JsonDocument.ParseAsync(body, cancellationToken: ct);
        return document.RootElement.Clone();
    }

    /// <summary>
    /// A long check asked to report as it goes (the API's application/x-ndjson answer): each progress line is handed to
    /// <paramref name="progress"/> as (step, done, total), and the result line is returned. An API that answers with
    /// plain JSON instead is read as the result.
    /// </summary>
    public async Task<JsonElement> StreamAsync(HttpMethod method, string path, Action<string, long, long> progress, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path.TrimStart('/'));
        request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(ProgressMediaType));
        using var response = await CallAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        if (response.Content.Headers.ContentType?.MediaType != ProgressMediaType)
        {
            using var whole = await JsonDocument.ParseAsync(body, cancellationToken: ct);
            return whole.RootElement.Clone();
        }
        using var lines = new StreamReader(body, Encoding.UTF8);
        while (await lines.ReadLineAsync(ct) is { } line)
        {
            using var document = JsonDocument.Parse(line);
            var root = document.RootElement;
            if (root.TryGetProperty("result", out var result))
            {
                return result.Clone();
            }
            if (root.TryGetProperty("error", out var error))
            {
                throw new CommandFailedException($"{error.Text("title")}: {error.Text("detail")}");
            }
            if (root.TryGetProperty("progress", out var report))
            {
                progress(report.Text("step"), report.Number("done"), report.Number("total"));
            }
        }
        throw new CommandFailedException("The admin API's answer ended before its result: the connection was cut, or the API stopped.");
    }

    private const string ProgressMediaType = "application/x-ndjson";

    /// <summary>A response body as it streams (a job log), for the caller to copy out and dispose.</summary>
    public async Task<HttpResponseMessage> OpenAsync(string path, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path.TrimStart('/'));
        return await CallAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
    }

    private async Task<HttpResponseMessage> CallAsync(HttpRequestMessage request, HttpCompletionOption completion, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, completion, ct);
        }
        catch (HttpRequestException ex)
        {
            throw new CommandFailedException($"Cannot reach the admin API at {settings.Url}: {ex.Message}");
        }
        if (response.IsSuccessStatusCode)
        {
            return response;
        }
        using (response)
        {
            var problem = await ProblemSentenceAsync(response, ct);
            throw response.StatusCode switch
            {
                HttpStatusCode.Unauthorized => new CommandFailedException(settings.ApiKey is null
                    ? "The admin API needs a key, and none was given: set PIPELINE_API_KEY, or name a key file with --api-key-file or PIPELINE_API_KEY_FILE."
                    : $"The admin API refused the key from {settings.KeySource}.", unauthorised: true),
                HttpStatusCode.Forbidden => new CommandFailedException($"The key from {settings.KeySource} may only read; this needs an operator's key.", unauthorised: true),
                _ => new CommandFailedException(problem),
            };
        }
    }

    /// <summary>"Title: detail", then every field's problem (a validation problem lists them all), from problem details.</summary>
    private static async Task<string> ProblemSentenceAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var status = $"{(int)response.StatusCode} {response.ReasonPhrase}";
        var text = await response.Content.ReadAsStringAsync(ct);
        try
        {
            using var document = JsonDocument.Parse(text);
            var root = document.RootElement;
            var title = root.TryGetProperty("title", out var t) ? t.GetString() : null;
            var detail = root.TryGetProperty("detail", out var d) ? d.GetString() : null;
            var sentence = new StringBuilder(string.Join(": ", new[] { title, detail }.Where(s => !string.IsNullOrWhiteSpace(s))));
            if (sentence.Length == 0)
            {
                sentence.Append(status);
            }
            if (root.TryGetProperty("errors", out var errors) && errors.ValueKind == JsonValueKind.Object)
            {
                foreach (var field in errors.EnumerateObject())
                {
                    foreach (var message in field.Value.EnumerateArray())
                    {
                        sentence.Append(CultureInfo.InvariantCulture, $"\n  {field.Name}: {message.GetString()}");
                    }
                }
            }
            return sentence.ToString();
        }
        catch (JsonException)
        {
            return text.Length is > 0 and < 500 ? $"{status}: {text.Trim()}" : status;
        }
    }

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };
}
