using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Infrastructure.Storage;
using Pipeline.Reconstruction.Batch;

namespace Pipeline.Tests.Support;

/// <summary>
/// A real one-node Slurm cluster for the batch tests (munged, slurmctld and slurmd of its own, on loopback, every file
/// in a folder of its own), started and stopped by tests/slurm/local-cluster.sh, the same script `make demo
/// EXECUTOR=slurm` uses; the script installs Slurm and munge from Debian when missing. Where the cluster cannot start,
/// the tests that need it are skipped with the reason.
/// </summary>
public sealed class SlurmCluster : IAsyncLifetime
{
    private TempDirectory? _folder;

    public string? Unavailable { get; private set; }

    /// <summary>The cluster's slurm.conf: Pipeline's Slurm:ConfigFile, and SLURM_CONF for the tools.</summary>
    public string ConfigFile => Path.Combine(_folder!.Path, "slurm.conf");

    public static string Script => Path.Combine(Platform.RepositoryRoot, "tests", "slurm", "local-cluster.sh");

    /// <summary>Settings for a Slurm client of this cluster, quick to poll.</summary>
    public SlurmOptions Options(string prefix = "pipeline") => new() { ConfigFile = ConfigFile, PollSeconds = 0.3, JobNamePrefix = prefix, MemoryMegabytes = 100, MissingSeconds = 10 };

    public SlurmClient Client(string prefix = "pipeline") => new(Microsoft.Extensions.Options.Options.Create(Options(prefix)));

    public async Task InitializeAsync()
    {
        _folder = new TempDirectory();
        var started = await RunScriptAsync("start");
        if (started is not null)
        {
            Unavailable = $"The Slurm cluster did not start: {started}";
        }
    }

    /// <summary>Skips the calling test, with the reason, when the cluster could not start.</summary>
    public void Require() => Skip.If(Unavailable is not null, Unavailable);

    /// <summary>Runs one of Slurm's tools against this cluster; returns its output, failing the test if it fails.</summary>
    public async Task<string> RunAsync(string tool, params string[] arguments)
    {
        var (exitCode, output) = await TryRunAsync(tool, arguments);
        Assert.True(exitCode == 0, $"{tool} {string.Join(' ', arguments)}: {output}");
        return output;
    }

    /// <summary>Takes the node down as the site would after a hardware fault: Slurm fails the jobs running on it (NODE_FAIL).</summary>
    public Task FailNodeAsync() => RunAsync("scontrol", "update", "NodeName=localhost", "State=DOWN", "Reason=test node failure");

    /// <summary>
    /// Stops the node's slurmd, as a machine that stops answering: its jobs' processes go on, but once the controller has
    /// heard nothing for SlurmdTimeout it declares the node down and fails its jobs (NODE_FAIL).
    /// </summary>
    public async Task StopNodeAsync() => Assert.Null(await RunScriptAsync("stop-node"));

    /// <summary>Starts the node's slurmd again, and waits until it takes jobs (the cluster's ReturnToService=2).</summary>
    public async Task StartNodeAsync()
    {
        Assert.Null(await RunScriptAsync("start-node"));
        await ResumeNodeAsync();
    }

    /// <summary>Brings the node back, and waits until it takes jobs again.</summary>
    public async Task ResumeNodeAsync() =>
        await Eventually.Until(async () =>
        {
            var state = (await RunAsync("sinfo", "-h", "-n", "localhost", "-o", "%t")).Trim();
            if (state.StartsWith("down", StringComparison.Ordinal) || state.StartsWith("drain", StringComparison.Ordinal))
            {
                // Refused while the node's jobs are still being cleaned up: asked again on the next look.
                await TryRunAsync("scontrol", "update", "NodeName=localhost", "State=RESUME");
            }
            return state;
        }, state => state is "idle" or "mix" or "alloc", TimeSpan.FromSeconds(60), "the node back up", state => state);

    /// <summary>Runs one of Slurm's tools against this cluster; returns its exit code and what it printed.</summary>
    public async Task<(int ExitCode, string Output)> TryRunAsync(string tool, params string[] arguments)
    {
        var run = await Tool.RunAsync(tool, arguments, new Dictionary<string, string?> { ["SLURM_CONF"] = ConfigFile });
        return (run.ExitCode, run.Printed);
    }

    private async Task<string?> RunScriptAsync(string command)
    {
        var (exitCode, output) = await TryRunAsync("bash", Script, command, _folder!.Path);
        return exitCode == 0 ? null : output.Trim();
    }

    public async Task DisposeAsync()
    {
        if (_folder is not null)
        {
            await RunScriptAsync("stop");
            _folder.Dispose();
        }
    }

    /// <summary>
    /// A runner of releases as this cluster's jobs, through the given client and watch; a wrapped job reads its report
    /// from <paramref name="areas"/> and starts in <paramref name="nodeFolder"/> on the node.
    /// </summary>
    public SlurmReleaseRunner Runner(SlurmClient client, SlurmJobWatch watch, StorageAreas? areas = null, string? nodeFolder = null)
    {
        var options = Options();
        options.NodeFolder = nodeFolder ?? options.NodeFolder;
        return new(client, watch, areas ?? StorageAreas.FromConfiguration(new Dictionary<string, string?>(), Path.Combine(_folder!.Path, "areas")),
            Microsoft.Extensions.Options.Options.Create(options),
            new Microsoft.Extensions.Hosting.Internal.ApplicationLifetime(NullLogger<Microsoft.Extensions.Hosting.Internal.ApplicationLifetime>.Instance), NullLogger<SlurmReleaseRunner>.Instance);
    }

    /// <summary>A watch on this cluster's jobs, started; dispose it to stop it.</summary>
    public async Task<SlurmJobWatch> WatchAsync(SlurmClient client, string prefix = "pipeline")
    {
        var watch = new SlurmJobWatch(client, Microsoft.Extensions.Options.Options.Create(Options(prefix)), TimeProvider.System, NullLogger<SlurmJobWatch>.Instance);
        await watch.StartAsync(CancellationToken.None);
        return watch;
    }
}
