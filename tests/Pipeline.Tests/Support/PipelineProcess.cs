using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace Pipeline.Tests.Support;

/// <summary>
/// The all-in-one host (`make run`) as a process of its own on a data folder, so a test can kill it with SIGKILL and
/// start it again on the same state; its API on a free loopback port, read with the viewer key it generates.
/// </summary>
public sealed class PipelineProcess(string dataDirectory)
{
    public int Port { get; } = FreePort();

    public HttpClient Http() => new() { BaseAddress = new Uri($"http://127.0.0.1:{Port}") };

    /// <summary>Starts the host with the given settings (environment variables) on top of the data folder and port.</summary>
    public Process Start(IReadOnlyDictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = dataDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in new[] { Path.Combine(AppContext.BaseDirectory, "Pipeline.Host.dll"), "run", "--urls", $"http://127.0.0.1:{Port}" })
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["Pipeline__DataDirectory"] = dataDirectory;
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        var process = Process.Start(start)!;
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private readonly Queue<string> _lastLines = new();

    /// <summary>The last lines the host printed (of every start), for a test's failure message.</summary>
    public string LastLines
    {
        get
        {
            lock (_lastLines)
            {
                return string.Join('\n', _lastLines);
            }
        }
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_lastLines)
        {
            _lastLines.Enqueue(line);
            while (_lastLines.Count > 40)
            {
                _lastLines.Dequeue();
            }
        }
    }

    /// <summary>The viewer key the host generated under its data directory at first start (no keys are configured).</summary>
    public string? GeneratedViewerKey()
    {
        var file = Path.Combine(dataDirectory, "api-keys.json");
        if (!File.Exists(file))
        {
            return null;
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        using var keys = JsonDocument.Parse(File.ReadAllText(file));
        return keys.RootElement.GetProperty("generated-viewer").GetProperty("key").GetString();
    }

    /// <summary>Files per state from the API's summary; empty while the host does not answer.</summary>
    public async Task<Dictionary<string, long>> TotalsAsync(HttpClient http)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/api/summary");
            request.Headers.Add("X-Api-Key", GeneratedViewerKey());
            using var response = await http.SendAsync(request);
            response.EnsureSuccessStatusCode();
            var summary = await response.Content.ReadFromJsonAsync<JsonElement>();
            return summary.GetProperty("totals").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt64());
        }
        catch (HttpRequestException)
        {
            return [];
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
