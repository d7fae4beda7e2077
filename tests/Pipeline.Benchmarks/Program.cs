using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pipeline.Benchmarks;

// make bench: every hot path against a baseline measured in this run, on the same bytes.
//   Pipeline.Benchmarks [OUT=path] [BENCH_ONLY=adler32,dataPath,storage,batch,scaleOut,orchestrators,orchestration,state,memory]
//   Pipeline.Benchmarks merge-child DIR INPUTS      (used by the memory benchmark)
//   Pipeline.Benchmarks micro [--filter *]          BenchmarkDotNet micro-benchmarks of the inner loops
if (args.Length >= 1 && args[0] == "micro")
{
    BenchmarkDotNet.Running.BenchmarkSwitcher.FromAssembly(typeof(MicroBenchmarks).Assembly).Run(args[1..], MicroBenchmarks.Config);
    return 0;
}
if (args.Length == 5 && args[0] == "chain-child")
{
    return await StorageBenchmark.ChainChildAsync(args[1], args[2], args[3], args[4]);
}

if (args.Length == 3 && args[0] == "merge-child")
{
    return await MergeMemoryBenchmark.ChildAsync(args[1], int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
}

string Setting(string name, string fallback) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? value : fallback;
int Number(string name, int fallback) => int.Parse(Setting(name, fallback.ToString(System.Globalization.CultureInfo.InvariantCulture)), System.Globalization.CultureInfo.InvariantCulture);

var output = Path.GetFullPath(Setting("OUT", "bench/results.json"));
var only = Setting("BENCH_ONLY", "adler32,dataPath,storage,batch,scaleOut,orchestrators,orchestration,state,memory").Split(',', StringSplitOptions.TrimEntries);
var work = Path.GetFullPath(Setting("BENCH_WORK", "bench/work"));
if (Directory.Exists(work))
{
    Directory.Delete(work, recursive: true);
}
Directory.CreateDirectory(work);
Directory.CreateDirectory(Path.GetDirectoryName(output)!);

var results = new JsonObject();
async Task Section(string name, Func<Task<object>> measure)
{
    if (!only.Contains(name))
    {
        return;
    }
    var watch = Stopwatch.StartNew();
    Console.Error.WriteLine($"bench: {name}...");
    var result = await measure();
    results[name] = JsonSerializer.SerializeToNode(result);
    Console.Error.WriteLine($"bench: {name} took {watch.Elapsed.TotalSeconds:F0}s: {results[name]!.ToJsonString()}");
}

await Section("adler32", () => Task.FromResult(Adler32Benchmark.Run()));
await Section("dataPath", () => DataPathBenchmark.RunAsync(Path.Combine(work, "datapath"), Number("BENCH_DATA_MB", 512)));
await Section("storage", () => StorageBenchmark.RunAsync(Path.Combine(work, "storage"), Number("BENCH_STORAGE_MB", 512)));
await Section("batch", () => BatchBenchmark.RunAsync(Path.Combine(work, "batch"), Number("BENCH_BATCH_CPUS", 4), Number("BENCH_BATCH_FILES", 24), Number("BENCH_BATCH_JOB_SECONDS", 30)));
await Section("scaleOut", () => ScaleOutBenchmark.RunAsync(Number("BENCH_SCALE_SLOTS", 4), Number("BENCH_SCALE_JOB_SECONDS", 20), Number("BENCH_SCALE_WAVES", 3), [1, 2, 4]));
await Section("orchestrators", () => OrchestratorsBenchmark.RunAsync(Number("BENCH_ORCHESTRATORS_FILES", 300)));
await Section("orchestration", () => OrchestrationBenchmark.RunAsync(
    new Uri(Setting("RABBITMQ_URI", "amqp://guest:guest@127.0.0.1:5672/")), Path.Combine(work, "orchestration"), Number("BENCH_FILES", 2000)));
await Section("state", () => StateBenchmark.RunAsync(work, Number("BENCH_RECORDS", 1_000_000), Environment.GetEnvironmentVariable("MONGODB_URI") is { Length: > 0 } mongo ? mongo : null));
await Section("memory", () => MergeMemoryBenchmark.RunAsync(Path.Combine(work, "memory"), Number("BENCH_MERGE_GIB", 4)));

results["machine"] = JsonSerializer.SerializeToNode(new
{
    cores = Environment.ProcessorCount,
    memoryGb = Math.Round(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 1e9),
    os = System.Runtime.InteropServices.RuntimeInformation.OSDescription,
    runtime = System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription,
    at = DateTimeOffset.UtcNow,
});
var line = results.ToJsonString();
await File.WriteAllTextAsync(output, line + "\n");
Directory.Delete(work, recursive: true);
Console.WriteLine(line);
return 0;
