using System.Globalization;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.SampleExperiment;

// The sample experiment's command line:
//   generate    --out DIR [--runs N] [--first-run N] [--streams a,b] [--files N] [--events N] [--payload BYTES] [--seed N]
//               writes raw files under DIR and prints the run announcements (JSON, one per line)
//   reconstruct --input FILE --outdir DIR --datasets name:mask,... [--histograms FILE] [--cpu-ms-per-event X]
//               [--attempt N --fail-attempts K]   (attempts up to K exit with code 3: a stand-in for a broken job)
//               [--sleep-ms-max N]   (first sleeps a random 0..N ms: jobs of uneven length; the output stays deterministic)
//               [--sleep-ms N]       (first sleeps exactly N ms: jobs of one length, for scaling measurements)
//               [--run R --section N --slow-run R --slow-section S --slow-ms M]   (the file of run R, section S sleeps M ms: a job longer than a broker's patience)
//   simulate    --run N --events N --seed N --outdir DIR --datasets name:mask,... [--conditions k=v,...] [--payload BYTES]
//               generates Monte Carlo events under the run's conditions and reconstructs them (one job, as a production would)
return await SampleCommand.RunAsync(args);

internal static class SampleCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0)
        {
            await Console.Error.WriteLineAsync("usage: Pipeline.SampleExperiment generate|reconstruct [options]");
            return 2;
        }
        try
        {
            var options = ParseOptions(args.AsSpan(1));
            return args[0] switch
            {
                "generate" => await GenerateAsync(options),
                "reconstruct" => await ReconstructAsync(options),
                "simulate" => await SimulateAsync(options),
                _ => Usage($"unknown command '{args[0]}'"),
            };
        }
        catch (Exception ex) when (ex is FormatException or KeyNotFoundException or ArgumentException)
        {
            return Usage(ex.Message);
        }
    }

    private static int Usage(string problem)
    {
        Console.Error.WriteLine($"error: {problem}");
        return 2;
    }

    private static Dictionary<string, string> ParseOptions(ReadOnlySpan<string> args)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new FormatException($"expected '--name value', got '{args[i]}'");
            }
            options[args[i][2..]] = args[++i];
        }
        return options;
    }

    private static int Int(Dictionary<string, string> options, string name, int fallback) =>
        options.TryGetValue(name, out var text) ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private static async Task<int> GenerateAsync(Dictionary<string, string> options)
    {
        var spec = new SampleSpec(
            Runs: Int(options, "runs", 2),
            FirstRun: Int(options, "first-run", 1000),
            Streams: options.TryGetValue("streams", out var streams) ? streams.Split(',') : null,
            FilesPerStream: Int(options, "files", 4),
            EventsPerFile: Int(options, "events", 500),
            PayloadBytes: Int(options, "payload", 512),
            Seed: Int(options, "seed", 1));
        var runs = await SampleGenerator.GenerateAsync(options["out"], spec);
        foreach (var run in runs)
        {
            Console.WriteLine(JsonSerializer.Serialize(run, ReleaseManifest.Json).ReplaceLineEndings("").Replace("  ", "", StringComparison.Ordinal));
        }
        return 0;
    }

    private static async Task<int> SimulateAsync(Dictionary<string, string> options)
    {
        var events = long.Parse(options["events"], CultureInfo.InvariantCulture);
        if (events < 0)
        {
            throw new FormatException("--events must not be negative");
        }
        var run = Int(options, "run", 0);
        var seed = Int(options, "seed", 1);
        var input = Path.Combine(options["outdir"], "..", $"simulated-{run:D6}-{seed}.raw");
        try
        {
            await SampleGenerator.SimulateAsync(input, run, events, Int(options, "payload", 256), seed, options.GetValueOrDefault("conditions") ?? "");
            await SampleReconstruction.RunAsync(input, options["outdir"], ReleaseManifest.ParseDatasets(options["datasets"]),
                options.GetValueOrDefault("histograms"), 0, Console.Out);
        }
        finally
        {
            File.Delete(input);
        }
        return 0;
    }

    private static async Task<int> ReconstructAsync(Dictionary<string, string> options)
    {
        var attempt = Int(options, "attempt", 1);
        var failAttempts = Int(options, "fail-attempts", 0);
        if (attempt <= failAttempts)
        {
            await Console.Error.WriteLineAsync($"ERROR simulated failure on attempt {attempt} (fails up to attempt {failAttempts})");
            return 3;
        }
        if (Int(options, "sleep-ms", 0) is > 0 and var sleep)
        {
            await Task.Delay(sleep);
        }
        if (Int(options, "sleep-ms-max", 0) is > 0 and var sleepMax)
        {
            await Task.Delay(Random.Shared.Next(sleepMax + 1));
        }
        if (Int(options, "slow-ms", 0) is > 0 and var slow && Int(options, "section", 0) == Int(options, "slow-section", -1) && Int(options, "run", 0) == Int(options, "slow-run", -1))
        {
            await Task.Delay(slow);
        }
        var cpu = options.TryGetValue("cpu-ms-per-event", out var text) ? double.Parse(text, CultureInfo.InvariantCulture) : 0;
        await SampleReconstruction.RunAsync(
            options["input"],
            options["outdir"],
            ReleaseManifest.ParseDatasets(options["datasets"]),
            options.GetValueOrDefault("histograms"),
            cpu,
            Console.Out);
        return 0;
    }
}
