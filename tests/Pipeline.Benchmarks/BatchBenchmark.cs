using System.Globalization;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Pipeline.Host;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Pipeline.Reconstruction.Batch;
using Pipeline.SampleExperiment;

namespace Pipeline.Benchmarks;

/// <summary>
/// How well the Slurm executor keeps a farm fed: a backlog of files whose jobs each sleep a fixed time, then run the
/// sample release, on a one-node cluster of its own with <c>cpus</c> CPUs and twice as many slots (jobs in flight).
/// From Slurm's own start and end times (whole seconds): the fraction of CPU time spent running jobs while work was
/// still waiting (from the first job's start to the last job's start), and the median delay from a file being
/// staged (ready) to its job starting.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public static class BatchBenchmark
{
    private const string Script = "tests/slurm/local-cluster.sh";

    public static async Task<object> RunAsync(string workDirectory, int cpus, int files, int jobSeconds)
    {
        Directory.CreateDirectory(workDirectory);
        var cluster = Path.Combine(workDirectory, "cluster");
        await StorageBenchmark.RunAsync("bash", [Script, "start", cluster, cpus.ToString(CultureInfo.InvariantCulture)]);
        try
        {
            // The job: sleep, then the sample release (every value an argument; nothing reaches a shell unquoted).
            var release = Path.Combine(workDirectory, "sleep-then-run.sh");
            await File.WriteAllTextAsync(release, "#!/bin/bash\nsleep \"$1\"\nshift\nexec \"$@\"\n");
            File.SetUnixFileMode(release, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            string[] arguments = [jobSeconds.ToString(CultureInfo.InvariantCulture), "{appdir}/Pipeline.SampleExperiment", "reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}"];
            var settings = new Dictionary<string, string?>
            {
                ["urls"] = "http://127.0.0.1:0",
                ["Pipeline:DataDirectory"] = Path.Combine(workDirectory, "data"),
                ["Pipeline:Transport"] = "InMemory",
                ["Pipeline:Campaign:Release:Executable"] = release,
                ["Pipeline:Campaign:MergeTargetBytes"] = (8 << 20).ToString(CultureInfo.InvariantCulture),
                ["Pipeline:Merger:FlushIdleSeconds"] = "0.5",
                ["Pipeline:Reconstruction:Executor"] = "Slurm",
                ["Pipeline:Reconstruction:Slots"] = (2 * cpus).ToString(CultureInfo.InvariantCulture),
                ["Pipeline:Reconstruction:Slurm:ConfigFile"] = Path.Combine(Path.GetFullPath(cluster), "slurm.conf"),
                ["Pipeline:Reconstruction:Slurm:PollSeconds"] = "1",
                ["Pipeline:Reconstruction:Slurm:MemoryMegabytes"] = "100",
                ["Serilog:MinimumLevel:Default"] = "Warning",
            };
            for (var i = 0; i < arguments.Length; i++)
            {
                settings[$"Pipeline:Campaign:Release:Arguments:{i}"] = arguments[i];
            }
            var app = PipelineApp.Build([], settings);
            await app.StartAsync();
            try
            {
                var areas = app.Services.GetRequiredService<StorageAreas>();
                var runs = await SampleGenerator.GenerateAsync((name, body, token) => areas.Archive.WriteAsync(name, body, token), new SampleSpec(Runs: 1, FilesPerStream: files / 2, EventsPerFile: 50, Seed: 9));
                var ingestion = app.Services.GetRequiredService<RunIngestion>();
                var bus = app.Services.GetRequiredService<IBus>();
                foreach (var run in runs)
                {
                    await ingestion.IngestAsync(run, bus, CancellationToken.None);
                }
                var sagas = app.Services.GetRequiredService<IFileSagaStore>();
                var total = runs.Sum(r => r.Files!.Count);
                using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(60 + (4.0 * total * jobSeconds / cpus)));
                while ((await sagas.CountByStateAsync(CancellationToken.None)).Where(c => FileStates.Final.Contains(c.State)).Sum(c => c.Files) < total)
                {
                    await Task.Delay(500, deadline.Token);
                }
                var slurm = new SlurmClient(app.Services.GetRequiredService<IOptions<SlurmOptions>>());
                var jobs = (await slurm.ListAsync(CancellationToken.None)).Where(j => j is { Started: not null, Ended: not null }).ToList();
                var baseline = await BaselineAsync(workDirectory, Path.Combine(Path.GetFullPath(cluster), "slurm.conf"), release, total, jobSeconds, deadline.Token);
                return Measure(jobs, await ReadyTimesAsync(sagas, slurm, jobs), baseline, cpus, total, jobSeconds);
            }
            finally
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }
        finally
        {
            await StorageBenchmark.RunAsync("bash", [Script, "stop", cluster]);
        }
    }

    /// <summary>
    /// The cluster's own limit, measured the same way: as many jobs of the same length submitted at once with sbatch,
    /// the most a submitter can give the scheduler, so that only Slurm's own gaps (and its whole-second times) remain.
    /// </summary>
    private static async Task<double> BaselineAsync(string workDirectory, string configFile, string release, int jobs, int jobSeconds, CancellationToken cancellationToken)
    {
        var options = Options.Create(new SlurmOptions { ConfigFile = configFile, JobNamePrefix = "baseline", MemoryMegabytes = 100 });
        var slurm = new SlurmClient(options);
        var folder = Path.Combine(workDirectory, "baseline");
        Directory.CreateDirectory(folder);
        var script = Path.Combine(folder, "job.sh");
        await File.WriteAllTextAsync(script, $"#!/bin/bash\nexec {SlurmReleaseRunner.Quote(release)} {jobSeconds} /bin/true\n", cancellationToken);
        for (var i = 0; i < jobs; i++)
        {
            await slurm.SubmitAsync(new SlurmSubmission(slurm.JobName(Guid.NewGuid(), 1), script, folder, Path.Combine(folder, $"{i}.out"), Path.Combine(folder, $"{i}.err"), TimeSpan.FromMinutes(10)), cancellationToken);
        }
        IReadOnlyList<SlurmJob> listed;
        while ((listed = await slurm.ListAsync(cancellationToken)).Count(j => j.HasEnded) < jobs)
        {
            await Task.Delay(500, cancellationToken);
        }
        var (busy, window) = BusyInWindow([.. listed.Where(j => j is { Started: not null, Ended: not null })]);
        return busy / window;
    }

    /// <summary>CPU-seconds spent running jobs from the first job's start to the last one's, and that window's length.</summary>
    private static (double Busy, double Window) BusyInWindow(IReadOnlyList<SlurmJob> jobs)
    {
        var firstStart = jobs.Min(j => j.Started!.Value);
        var lastStart = jobs.Max(j => j.Started!.Value);
        var busy = jobs.Sum(j => Math.Max(0, (Min(j.Ended!.Value, lastStart) - Max(j.Started!.Value, firstStart)).TotalSeconds));
        return (busy, (lastStart - firstStart).TotalSeconds);
    }

    /// <summary>When each job's file was staged, by job id.</summary>
    private static async Task<Dictionary<long, DateTimeOffset>> ReadyTimesAsync(IFileSagaStore sagas, SlurmClient slurm, IReadOnlyList<SlurmJob> jobs)
    {
        var ready = new Dictionary<long, DateTimeOffset>();
        foreach (var job in jobs)
        {
            if (slurm.Owner(job.Name) is { } owner && await sagas.LoadAsync(owner.FileId, CancellationToken.None) is { } file
                && file.History.LastOrDefault(h => h.Event == "FileStaged" && h.Attempt == owner.Attempt) is { } staged)
            {
                ready[job.Id] = staged.At;
            }
        }
        return ready;
    }

    private static object Measure(IReadOnlyList<SlurmJob> jobs, Dictionary<long, DateTimeOffset> ready, double baselineCpuFraction, int cpus, int files, int jobSeconds)
    {
        // CPU time spent running jobs while work still waited for a slot, as a fraction of the CPUs' time then.
        var (busy, window) = BusyInWindow(jobs);
        var busyFraction = window > 0 ? busy / (cpus * window) : 0;
        var baseline = baselineCpuFraction / cpus;
        var delays = jobs.Where(j => ready.ContainsKey(j.Id)).Select(j => Math.Max(0, (j.Started!.Value - ready[j.Id]).TotalSeconds)).Order().ToList();
        return new
        {
            cpus,
            slots = 2 * cpus,
            files,
            jobs = jobs.Count,
            jobSeconds,
            busyFraction = Math.Round(busyFraction, 3),
            baselineBusyFraction = Math.Round(baseline, 3),
            ratio = baseline > 0 ? Math.Round(busyFraction / baseline, 3) : 0,
            readyToStartMedianSeconds = delays.Count > 0 ? Math.Round(delays[delays.Count / 2], 1) : 0,
            readyToStartMaxSeconds = delays.Count > 0 ? Math.Round(delays[^1], 1) : 0,
            windowSeconds = window,
        };
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
