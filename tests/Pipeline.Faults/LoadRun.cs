using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Pipeline.Production.State;

namespace Pipeline.Faults;

/// <summary>What `hey` measured on one read endpoint.</summary>
public sealed record EndpointLoad(string Path, int Connections, long Requests, double RequestsPerSecond, double P50Ms, double P95Ms, double P99Ms, long Errors, long NotOk);

/// <summary>The load run's result; its JSON is `make load`'s last line.</summary>
public sealed record LoadReport(double Seconds, int Connections, int FilesReconstructedDuring, IReadOnlyList<EndpointLoad> Endpoints)
{
    public long Errors => Endpoints.Sum(e => e.Errors + e.NotOk);

    public double WorstP95Ms => Endpoints.Max(e => e.P95Ms);

    public bool Passed => Errors == 0 && Endpoints.All(e => e.Requests > 0) && FilesReconstructedDuring > 0;
}

/// <summary>
/// `make load`: Debian's `hey` on the API's read endpoints, the connections split between them, for a fixed
/// time while files flow through the services (as processes, on their own broker): p50/p95/p99 latency and
/// every error or non-2xx answer.
/// </summary>
public sealed partial class LoadRun(TimeSpan duration, int connections, int files, int brokerPort, TextWriter log)
{
    public const string Hey = "/usr/bin/hey";

    private static readonly string[] ReadEndpoints = ["/api/summary", "/api/files?limit=100", "/api/campaigns", "/api/flow"];

    public async Task<LoadReport> RunAsync(CancellationToken cancellationToken)
    {
        await using var pipeline = await ProcessPipeline.StartAsync(null, brokerPort, log, _ => null, releaseSleepMsMax: 300, cancellationToken);
        var runs = await pipeline.GenerateAsync(files, seed: 1);
        await pipeline.AnnounceAsync(runs, cancellationToken);
        using var store = StoreBackend.Sqlite(Path.Combine(pipeline.Data, "pipeline.db"));
        // The load starts once the flow is under way (a file reconstructed): the first reconstructions wait for the
        // orchestrator to work through every file's registration and staging, which can take most of a short run.
        var flowing = Stopwatch.StartNew();
        while (await ReconstructedAsync(store.Sagas, cancellationToken) == 0 && flowing.Elapsed < TimeSpan.FromMinutes(3))
        {
            await Task.Delay(200, cancellationToken);
        }
        var before = await ReconstructedAsync(store.Sagas, cancellationToken);
        log.WriteLine($"load: {files} files announced; {connections} connections on {ReadEndpoints.Length} read endpoints for {duration.TotalSeconds:F0}s");

        var port = pipeline["api"].Port.ToString(CultureInfo.InvariantCulture);
        var share = Math.Max(1, connections / ReadEndpoints.Length);
        var measured = await Task.WhenAll(ReadEndpoints.Select(path => HeyAsync($"http://127.0.0.1:{port}{path}", path, share, pipeline.ViewerKey, cancellationToken)));
        var after = await ReconstructedAsync(store.Sagas, cancellationToken);
        if (after == before)
        {
            log.WriteLine("load: no file was reconstructed while the load ran: the flow was not under way");
        }
        var report = new LoadReport(duration.TotalSeconds, share * ReadEndpoints.Length, after - before, measured);
        pipeline.KeepWork = !report.Passed;
        return report;
    }

    private static async Task<int> ReconstructedAsync(IFileSagaStore store, CancellationToken cancellationToken) =>
        (int)(await store.CountByStateAsync(cancellationToken)).Where(c => FileStates.PastReconstruction.Contains(c.State)).Sum(c => c.Files);

    private async Task<EndpointLoad> HeyAsync(string url, string path, int workers, string key, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(Hey) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "-z", $"{duration.TotalSeconds.ToString(CultureInfo.InvariantCulture)}s", "-c", workers.ToString(CultureInfo.InvariantCulture), "-t", "10", "-H", $"X-Api-Key: {key}", url })
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("cannot start hey");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        var text = await output;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"hey exited {process.ExitCode}: {await error}{text}");
        }
        return Parse(path, workers, text);
    }

    /// <summary>Reads hey's summary: requests per second, the latency percentiles, the status codes and the errors.</summary>
    public static EndpointLoad Parse(string path, int workers, string text)
    {
        double Seconds(string percentile) =>
            Regex.Match(text, $@"^\s*{percentile}% in ([0-9.]+) secs", RegexOptions.Multiline) is { Success: true } m ? double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : double.NaN;
        var codes = StatusLine().Matches(text).ToDictionary(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), m => long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        var errorsAt = text.IndexOf("Error distribution:", StringComparison.Ordinal);
        var errors = errorsAt < 0 ? 0 : ErrorLine().Matches(text[errorsAt..]).Sum(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        var rps = RequestsPerSecond().Match(text) is { Success: true } r ? double.Parse(r.Groups[1].Value, CultureInfo.InvariantCulture) : 0;
        return new EndpointLoad(path, workers, codes.Values.Sum() + errors, Math.Round(rps, 1),
            Math.Round(Seconds("50") * 1000, 2), Math.Round(Seconds("95") * 1000, 2), Math.Round(Seconds("99") * 1000, 2),
            errors, codes.Where(c => c.Key is < 200 or >= 300).Sum(c => c.Value));
    }

    [GeneratedRegex(@"^\s*\[(\d{3})\]\s+(\d+) responses", RegexOptions.Multiline)]
    private static partial Regex StatusLine();

    [GeneratedRegex(@"^\s*\[(\d+)\]\s", RegexOptions.Multiline)]
    private static partial Regex ErrorLine();

    [GeneratedRegex(@"Requests/sec:\s+([0-9.]+)")]
    private static partial Regex RequestsPerSecond();
}
