using System.Text;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Jobs;
using Pipeline.Production.Campaigns;
using Pipeline.Reconstruction;
using Pipeline.Reconstruction.Batch;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Batch;

/// <summary>Releases run as jobs of a real one-node Slurm cluster, and their ends as Slurm reports them.</summary>
public sealed class When_a_release_runs_as_a_slurm_job(SlurmCluster cluster) : IClassFixture<SlurmCluster>, IAsyncLifetime
{
    private readonly TempDirectory _folder = new();
    private SlurmClient _slurm = null!;
    private SlurmJobWatch _watch = null!;
    private SlurmReleaseRunner _runner = null!;

    public async Task InitializeAsync()
    {
        if (cluster.Unavailable is not null)
        {
            return;
        }
        _slurm = cluster.Client();
        _watch = await cluster.WatchAsync(_slurm);
        _runner = cluster.Runner(_slurm, _watch);
    }

    [SkippableFact]
    public async Task Should_pass_every_argument_verbatim_with_no_shell_reading_it_and_report_completed()
    {
        cluster.Require();
        var canaries = Path.Combine(_folder.Path, "canaries");
        Directory.CreateDirectory(canaries);
        string[] arguments =
        [
            $"a;touch {canaries}/semicolon", $"$(touch {canaries}/dollar)", $"`touch {canaries}/backtick`", $"one\ntouch {canaries}/newline",
            $"it's \"quoted\" '; touch {canaries}/quote; '", "$HOME", "*", "", $"x && touch {canaries}/and | cat",
        ];
        var job = Job(Release("printf '%s\\0' \"$@\" > args.bin\necho \"hello from job $SLURM_JOB_ID\""), arguments, attempt: 3);

        var outcome = await _runner.RunAsync(job, CancellationToken.None);

        Assert.Equal((0, "COMPLETED", false), (outcome.ExitCode, outcome.BatchState, outcome.SiteFailure));
        var received = (await File.ReadAllTextAsync(Path.Combine(job.WorkingDirectory, "args.bin"), Encoding.UTF8)).Split('\0')[..^1];
        Assert.Equal(arguments, received);
        Assert.Empty(Directory.EnumerateFileSystemEntries(canaries));
        Assert.Contains($"hello from job {outcome.BatchJobId}", await File.ReadAllTextAsync(job.LogPath), StringComparison.Ordinal);
        // Slurm knows the job by the file and attempt it runs.
        var listed = (await _slurm.ListAsync(CancellationToken.None)).Single(j => j.Id == outcome.BatchJobId);
        Assert.Equal(_slurm.JobName(job.FileId, 3), listed.Name);
        Assert.Equal((job.FileId, 3), _slurm.Owner(listed.Name));
    }

    [SkippableFact]
    public async Task Should_report_a_failed_job_with_the_releases_exit_code_and_first_error_line()
    {
        cluster.Require();
        var job = Job(Release("echo 'reading input'\necho 'ERROR bad record 7 at offset 0x10' >&2\nexit 3"));

        var outcome = await _runner.RunAsync(job, CancellationToken.None);

        Assert.Equal((3, "FAILED", false), (outcome.ExitCode, outcome.BatchState, outcome.SiteFailure));
        Assert.Equal("ERROR bad record 7 at offset 0x10", outcome.FirstErrorLine);
        Assert.Contains("reading input", outcome.LogTail, StringComparison.Ordinal);
    }

    [SkippableFact]
    public async Task Should_report_a_job_the_site_cancelled_as_the_sites_failure()
    {
        cluster.Require();
        var job = Job(Release("sleep 300"));
        var running = _runner.RunAsync(job, CancellationToken.None);
        var id = await RunningJobAsync(job);

        await cluster.RunAsync("scancel", id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var outcome = await running;

        Assert.Equal(("CANCELLED", true), (outcome.BatchState, outcome.SiteFailure));
    }

    [SkippableFact]
    public async Task Should_report_a_job_on_a_failed_node_as_the_sites_failure()
    {
        cluster.Require();
        var job = Job(Release("sleep 300"));
        var running = _runner.RunAsync(job, CancellationToken.None);
        await RunningJobAsync(job);

        await cluster.FailNodeAsync();
        try
        {
            var outcome = await running;

            Assert.Equal(("NODE_FAIL", true, "localhost"), (outcome.BatchState, outcome.SiteFailure, outcome.BatchNode));
        }
        finally
        {
            await cluster.ResumeNodeAsync();
        }
    }

    [SkippableFact]
    public async Task Should_cancel_the_job_when_its_lease_is_lost()
    {
        cluster.Require();
        var job = Job(Release("sleep 300"));
        using var leaseLost = new CancellationTokenSource();
        var running = _runner.RunAsync(job, leaseLost.Token);
        var id = await RunningJobAsync(job);

        await leaseLost.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        await Eventually.Until(() => _slurm.ListAsync(CancellationToken.None), jobs => jobs.Single(j => j.Id == id).State == "CANCELLED",
            TimeSpan.FromSeconds(30), $"job {id} cancelled", jobs => jobs.Single(j => j.Id == id).State);
    }

    [SkippableFact]
    public async Task Should_ask_for_the_campaigns_resources_and_hold_the_time_limit_to_the_partitions_maximum_so_that_it_does_not_wait_for_ever()
    {
        cluster.Require();
        await cluster.RunAsync("scontrol", "update", "PartitionName=test", "MaxTime=30");
        try
        {
            // A client of its own: the partition's maximum is read once and kept for minutes.
            var slurm = cluster.Client();
            var resources = new BatchResources { Partition = "test", CpusPerJob = 2, MemoryMegabytes = 200 };
            var job = Job(Release("sleep 300")) with { Timeout = TimeSpan.FromHours(2), Resources = resources };
            using var stop = new CancellationTokenSource();
            var running = cluster.Runner(slurm, _watch).RunAsync(job, stop.Token);
            var id = await RunningJobAsync(job);

            Assert.Equal("30:00|2|200M|test", (await cluster.RunAsync("squeue", "--noheader", $"--jobs={id}", "--format=%l|%C|%m|%P")).Trim());
            await stop.CancelAsync();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        }
        finally
        {
            await cluster.RunAsync("scontrol", "update", "PartitionName=test", "MaxTime=INFINITE");
        }
    }

    [SkippableFact]
    public async Task Should_run_a_wrapped_job_in_a_folder_of_its_node_that_fetches_its_input_and_copies_its_outputs_and_logs_through_storage()
    {
        cluster.Require();
        var (areas, node, runner) = WrappedRunner();
        var canaries = Directory.CreateDirectory(Path.Combine(_folder.Path, "canaries")).FullName;
        string[] arguments =
        [
            $"a;touch {canaries}/semicolon", $"$(touch {canaries}/dollar)", $"`touch {canaries}/backtick`", $"one\ntouch {canaries}/newline",
            $"it's \"quoted\" '; touch {canaries}/quote; '", "$HOME", "*", "", $"x && touch {canaries}/and | cat", "{\"json\": 'inside'}",
        ];
        var raw = Encoding.UTF8.GetBytes("raw event bytes\n");
        var (job, message) = await WrappedJobAsync(areas, raw, raw, arguments, """
            input=$1; out=$2; jobdir=$3; shift 3
            cp "$input" "$out/copy.dat"
            printf '%s\0' "$@" > "$out/args.dat"
            echo "release ran in $PWD with job folder $jobdir"
            printf '[{"dataset":"physics","file":"copy.dat","events":1},{"dataset":"calib","file":"args.dat","events":2}]' > "$out/outputs.json"
            """);

        var outcome = await runner.RunAsync(job, CancellationToken.None);

        Assert.Equal((0, "COMPLETED", false), (outcome.ExitCode, outcome.BatchState, outcome.SiteFailure));
        var report = Assert.IsType<JobReport>(outcome.Report);
        Assert.Null(report.Problem);
        // The release ran on the node, in the folder the wrapper made there, and not in the worker's job folder.
        Assert.Contains($"release ran in {node}/pipeline-job-{outcome.BatchJobId}/", outcome.LogTail, StringComparison.Ordinal);
        Assert.Equal([SlurmReleaseRunner.ScriptName], Directory.EnumerateFiles(job.WorkingDirectory).Select(Path.GetFileName));
        Assert.Empty(Directory.EnumerateFileSystemEntries(node));
        // Every value reached the release verbatim, through the job's script and the wrapper.
        var outputs = report.Outputs.ToDictionary(o => o.Dataset);
        Assert.Equal(raw, await ReadAsync(areas.Unmerged, outputs["physics"].Name));
        Assert.Equal(arguments, Encoding.UTF8.GetString(await ReadAsync(areas.Unmerged, outputs["calib"].Name)).Split('\0')[..^1]);
        Assert.Empty(Directory.EnumerateFileSystemEntries(canaries));
        // Each output is in the unmerged area as the node checksummed it, under the name the worker's own job would give it.
        foreach (var output in report.Outputs)
        {
            Assert.StartsWith($"{job.Wrapped!.JobDirectory}/out/", output.Name, StringComparison.Ordinal);
            Assert.Equal((output.Size, output.Adler32), await ChecksumAsync(areas.Unmerged, output.Name));
        }
        // The log went to the attempt's log folder, as checksummed on the node.
        var log = Assert.Single(report.Logs);
        var logName = $"{JobLogFolders.Of(message.Campaign, message.Run, message.Stream, message.FileId, message.Attempt)}/{log.Name}";
        Assert.Equal(ReconstructionWorker.JobLogName, log.Name);
        Assert.Equal((log.Size, log.Adler32), await ChecksumAsync(areas.Logs, logName));
        Assert.Contains($"pipeline job: {message.FileId} attempt 1 on ", Encoding.UTF8.GetString(await ReadAsync(areas.Logs, logName)), StringComparison.Ordinal);
        Assert.True(await areas.Unmerged.ExistsAsync(JobReport.NameIn(job.Wrapped!.JobDirectory), CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_refuse_a_staged_input_that_does_not_match_its_catalogued_checksum_on_the_node_and_not_run_the_release()
    {
        cluster.Require();
        var (areas, _, runner) = WrappedRunner();
        var ran = Path.Combine(_folder.Path, "ran");
        var (job, _) = await WrappedJobAsync(areas, Encoding.UTF8.GetBytes("catalogued bytes"), Encoding.UTF8.GetBytes("corrupted bytes!"), [ran], """
            touch "$4"
            """);

        var outcome = await runner.RunAsync(job, CancellationToken.None);

        var report = Assert.IsType<JobReport>(outcome.Report);
        Assert.Equal(("FAILED", false, false), (outcome.BatchState, outcome.SiteFailure, report.SiteFailure));
        Assert.Contains("is corrupt: catalogued 16 bytes", report.Problem, StringComparison.Ordinal);
        Assert.Empty(report.Outputs);
        Assert.False(File.Exists(ran));
    }

    private (StorageAreas Areas, string Node, SlurmReleaseRunner Runner) WrappedRunner()
    {
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?>(), Path.Combine(_folder.Path, "data"));
        var node = Directory.CreateDirectory(Path.Combine(_folder.Path, "node")).FullName;
        return (areas, node, cluster.Runner(_slurm, _watch, areas, node));
    }

    /// <summary>A job for the wrapper: <paramref name="staged"/> in the cache, catalogued as <paramref name="catalogued"/>; the release gets {input} {outdir} {jobdir} and the arguments.</summary>
    private async Task<(ReleaseJob Job, ReconstructFile Message)> WrappedJobAsync(StorageAreas areas, byte[] catalogued, byte[] staged, string[] arguments, string releaseBody)
    {
        var message = new ReconstructFile(Guid.NewGuid(), 7, "physics", "prompt", 1, 0, $"prompt/attempt-1/{Guid.NewGuid():N}.raw", "v1",
            [new DatasetSelection("physics", 1), new DatasetSelection("calib", 2)], InputSize: catalogued.Length,
            InputAdler32: Adler32Checksum.Format(Adler32Checksum.Of(catalogued)));
        await areas.Cache.WriteAsync(message.CachedName!, (stream, token) => stream.WriteAsync(staged, token).AsTask(), CancellationToken.None);
        var jobDirectory = $"{JobFolders.OfAttempt(message.Campaign, message.Run, message.FileId, message.Attempt)}/{Guid.NewGuid().ToString("N")[..8]}";
        var folder = Directory.CreateDirectory(areas.Scratch.PathOf(jobDirectory)).FullName;
        var spec = new JobSpec(message, jobDirectory, Release(releaseBody), ["{input}", "{outdir}", "{jobdir}", .. arguments], new Dictionary<string, string>(), 300,
            JobSpec.AreasOf(areas), new RemoteStorageOptions(), VerifyInput: true);
        var job = new ReleaseJob("", [], folder, Path.Combine(folder, ReconstructionWorker.JobLogName), TimeSpan.FromMinutes(5), message.FileId, message.Attempt,
            message.Campaign, Wrapped: spec, ReportName: JobReport.NameIn(jobDirectory));
        return (job, message);
    }

    private static async Task<byte[]> ReadAsync(StorageArea area, string name)
    {
        await using var stream = await area.OpenReadAsync(name, CancellationToken.None);
        using var copy = new MemoryStream();
        await stream.CopyToAsync(copy);
        return copy.ToArray();
    }

    private static async Task<(long Size, string Adler32)> ChecksumAsync(StorageArea area, string name)
    {
        var (size, adler) = await area.ChecksumAsync(name, CancellationToken.None);
        return (size, Adler32Checksum.Format(adler));
    }

    [Theory]
    [InlineData("infinite", null)]
    [InlineData("UNLIMITED", null)]
    [InlineData("30", "00:30:00")]
    [InlineData("30:00", "00:30:00")]
    [InlineData("4:00:00", "04:00:00")]
    [InlineData("2-00:00:00", "2.00:00:00")]
    [InlineData("1-12", "1.12:00:00")]
    [InlineData("1-12:30", "1.12:30:00")]
    [InlineData("n/a", null)]
    [InlineData("1:2:3:4", null)]
    public void Should_read_a_time_limit_as_slurm_prints_it(string printed, string? expected) =>
        Assert.Equal(expected is null ? null : TimeSpan.Parse(expected, System.Globalization.CultureInfo.InvariantCulture), SlurmClient.ParseTimeLimit(printed));

    private async Task<long> RunningJobAsync(ReleaseJob job)
    {
        var name = _slurm.JobName(job.FileId, job.Attempt);
        var jobs = await Eventually.Until(() => _slurm.ListAsync(CancellationToken.None), jobs => jobs.Any(j => j.Name == name && j.State == "RUNNING"),
            TimeSpan.FromSeconds(60), $"job {name} running", jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));
        return jobs.Single(j => j.Name == name).Id;
    }

    /// <summary>A release: a bash script in the test's folder.</summary>
    private string Release(string body)
    {
        var path = Path.Combine(_folder.Path, $"release-{Guid.NewGuid():N}.sh");
        File.WriteAllText(path, $"#!/bin/bash\n{body}\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private ReleaseJob Job(string executable, string[]? arguments = null, int attempt = 1)
    {
        var folder = Path.Combine(_folder.Path, Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        return new ReleaseJob(executable, arguments ?? [], folder, Path.Combine(folder, ReconstructionWorker.JobLogName), TimeSpan.FromMinutes(5), Guid.NewGuid(), attempt);
    }

    public async Task DisposeAsync()
    {
        if (_watch is not null)
        {
            await _watch.StopAsync(CancellationToken.None);
            _watch.Dispose();
        }
        _folder.Dispose();
    }
}
