using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// What a batch job is given to run on its compute node: the request, the release's executable and argument templates
/// with every value but the node's own paths, its time limit, and where the areas it reads and writes are (locations
/// without credentials; the access settings name credential files, never hold them).
/// </summary>
/// <param name="JobDirectory">The job's folder name, as in the worker's scratch: its outputs take the same names in the unmerged area.</param>
public sealed record JobSpec(
    ReconstructFile Message, string JobDirectory, string Executable, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Values,
    int TimeoutSeconds, IReadOnlyDictionary<string, string?> Areas, RemoteStorageOptions Remote, bool VerifyInput)
{
    /// <summary>The placeholders only the node can fill in: its own folders.</summary>
    public static readonly IReadOnlyList<string> NodePlaceholders = ["input", "outdir", "jobdir"];

    /// <summary>A member left out or null where the spec needs it is refused as the spec is read, not met later as a null.</summary>
    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true };

    /// <summary>The areas a job on a compute node reads and writes, by location (a folder's as an absolute file:// URL).</summary>
    public static IReadOnlyDictionary<string, string?> AreasOf(StorageAreas areas) =>
        new[] { StorageOptions.Cache, StorageOptions.Unmerged, StorageOptions.Logs }.ToDictionary(a => a, a => (string?)areas[a].Location.AbsoluteUri, StringComparer.Ordinal);
}

/// <summary>
/// What a batch job left in the unmerged area for its worker: how the release ended, what went wrong, and the outputs
/// and logs it copied (each compared with the checksum taken on the node before it took its name).
/// </summary>
public sealed record JobReport(
    int? ExitCode, bool TimedOut, string? Problem, bool SiteFailure, string LogTail, string? FirstErrorLine,
    IReadOnlyList<OutputFile> Outputs, IReadOnlyList<JobLogFile> Logs, string Node)
{
    public const string FileName = "report.json";

    /// <summary>Where a job's report is in the unmerged area.</summary>
    public static string NameIn(string jobDirectory) => $"{jobDirectory}/{FileName}";
}

/// <summary>
/// The job wrapper: what a Slurm job runs on its compute node in place of the bare release, so that the node needs no
/// folder shared with the worker and the worker's host carries none of the job's bytes. In a folder of the node's own, it
/// fetches the staged input from the cache area (checksummed on the way in, as <see cref="JobInputs"/> does), runs the
/// release with an argument list, checksums and copies the outputs the release reported into the unmerged area and its
/// logs into the logs area (each compared before it takes its final name), writes its <see cref="JobReport"/> last, and
/// removes its folder. It is the worker's own program started as <c>job SPEC</c>, so it reads and writes storage with
/// the very code the services use.
/// </summary>
public static class JobWrapper
{
    public const string Command = "job";

    /// <summary>The exit codes of the wrapper itself (a failed release's own code is passed on).</summary>
    public static class ExitCodes
    {
        public const int Done = 0;
        public const int BadSpec = 64;
        public const int BrokeDown = 70;
        public const int Rejected = 65;
        public const int NoReport = 74;
        public const int StorageFailed = 75;
        public const int Killed = 137;
    }

    public static async Task<int> MainAsync(string specText)
    {
        JobSpec? spec;
        try
        {
            spec = JsonSerializer.Deserialize<JobSpec>(specText, JobSpec.Json);
        }
        catch (JsonException ex)
        {
            await Console.Error.WriteLineAsync($"pipeline job: the job's spec is not valid: {ex.Message}");
            return ExitCodes.BadSpec;
        }
        if (spec is null)
        {
            await Console.Error.WriteLineAsync("pipeline job: the job's spec is empty");
            return ExitCodes.BadSpec;
        }
        // The job's own folder on the node: under the folder Slurm started it in, named by the batch job.
        var batchJob = Environment.GetEnvironmentVariable("SLURM_JOB_ID") is { Length: > 0 } id ? id : Guid.NewGuid().ToString("N")[..12];
        var root = Path.Combine(Directory.GetCurrentDirectory(), $"pipeline-job-{batchJob}");
        using var stopping = new CancellationTokenSource();
        // Slurm ends a job that runs past its limit, or is cancelled, with SIGTERM first: the release is stopped and
        // what the job has is still reported.
        using var terminate = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, context =>
        {
            context.Cancel = true;
            stopping.Cancel();
        });
        try
        {
            var (report, exitCode) = await RunAsync(spec, root, Environment.MachineName, stopping.Token);
            await Console.Out.WriteLineAsync($"pipeline job: {report.Problem ?? "done"}");
            return exitCode;
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
    }

    /// <summary>Runs the job in <paramref name="root"/> (the node's folder); returns its report, also written to the unmerged area, and the exit code.</summary>
    public static async Task<(JobReport Report, int ExitCode)> RunAsync(JobSpec spec, string root, string node, CancellationToken stopping)
    {
        // The worker's spool folder is on the worker's host: the node spools in its own folder.
        spec.Remote.SpoolPath = null;
        var areas = StorageAreas.FromConfiguration(
            new Dictionary<string, string?>(spec.Areas, StringComparer.Ordinal) { [StorageOptions.Scratch] = root }, root, remote: spec.Remote);
        var message = spec.Message;
        var jobPath = areas.Scratch.PathOf(spec.JobDirectory);
        var outputDirectory = $"{spec.JobDirectory}/out";
        Directory.CreateDirectory(areas.Scratch.PathOf(outputDirectory));
        var logPath = Path.Combine(jobPath, ReconstructionWorker.JobLogName);

        JobReport report;
        int exitCode;
        try
        {
            (report, exitCode) = await RunReleaseAsync(spec, areas, jobPath, outputDirectory, logPath, node, stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Slurm's SIGTERM before the release started (while the input was fetched): Slurm's state says why.
            report = new JobReport(null, false, "the job was stopped by the batch system before its release ran", false, "", null, [], [], node);
            exitCode = ExitCodes.Killed;
        }
        catch (Exception ex)
        {
            // Reported like any end, so that the worker (and the operator) learns what broke, with the stack in the job's log.
            await File.AppendAllTextAsync(logPath, $"pipeline job: the job wrapper broke down: {ex}\n", CancellationToken.None);
            report = new JobReport(null, false, $"the job wrapper broke down on {node}: {ex.GetType().Name}: {ex.Message}", true, "", null, [], [], node);
            exitCode = ExitCodes.BrokeDown;
        }
        // The logs go after the release (and the wrapper's own lines in job.log with them), whatever its end.
        var logs = await new JobLogs(areas, NullLogger<JobLogs>.Instance).ShipAsync(message, spec.JobDirectory, CancellationToken.None);
        report = report with { Logs = logs };
        try
        {
            await areas.Unmerged.WriteAsync(JobReport.NameIn(spec.JobDirectory),
                (stream, token) => JsonSerializer.SerializeAsync(stream, report, JobSpec.Json, token), CancellationToken.None);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await Console.Error.WriteLineAsync($"pipeline job: could not write the job's report into the unmerged area ({areas.Unmerged.Location}): {ex.Message}");
            await new JobOutputCopies(areas).ForgetAsync(report.Outputs);
            return (report with { Problem = $"could not write the job's report: {ex.Message}", SiteFailure = true }, ExitCodes.NoReport);
        }
        return (report, exitCode);
    }

    private static async Task<(JobReport Report, int ExitCode)> RunReleaseAsync(
        JobSpec spec, StorageAreas areas, string jobPath, string outputDirectory, string logPath, string node, CancellationToken stopping)
    {
        var message = spec.Message;
        JobReport Failed(string problem, bool siteFailure = false, ReleaseOutcome? outcome = null) =>
            new(outcome?.ExitCode, outcome?.TimedOut ?? false, problem, siteFailure, outcome?.LogTail ?? "", outcome?.FirstErrorLine, [], [], node);
        await using (var log = new StreamWriter(logPath, append: true, Encoding.UTF8))
        {
            await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"pipeline job: {message.FileId} attempt {message.Attempt} on {node}"));
        }
        string input;
        string? inputProblem;
        try
        {
            (input, inputProblem) = await new JobInputs(areas, Options.Create(new ReconstructionOptions { VerifyInput = spec.VerifyInput }))
                .PrepareAsync(message, jobPath, stopping);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or UnauthorizedAccessException)
        {
            // The cache cannot be read from this node: the site's failure, not the file's.
            return (Failed($"could not fetch the staged input from the cache area ({areas.Cache.Location}) on {node}: {ex.Message}", siteFailure: true),
                ExitCodes.StorageFailed);
        }
        if (inputProblem is not null)
        {
            return (Failed(inputProblem), ExitCodes.Rejected);
        }
        var values = new Dictionary<string, string>(spec.Values, StringComparer.Ordinal)
        {
            ["input"] = input,
            ["outdir"] = areas.Scratch.PathOf(outputDirectory),
            ["jobdir"] = jobPath,
        };
        ReleaseJob job;
        try
        {
            job = new ReleaseJob(ArgumentTemplate.Expand(spec.Executable, values), [.. spec.Arguments.Select(a => ArgumentTemplate.Expand(a, values))],
                jobPath, logPath, TimeSpan.FromSeconds(spec.TimeoutSeconds), message.FileId, message.Attempt, message.Campaign);
        }
        catch (FormatException ex)
        {
            return (Failed(ex.Message), ExitCodes.Rejected);
        }
        ReleaseOutcome outcome;
        try
        {
            outcome = await new ProcessReleaseRunner().RunAsync(job, stopping);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Slurm's SIGTERM (the time limit, a cancellation): the release is killed; Slurm's state says which.
            return (Failed("the job was stopped by the batch system", outcome: new ReleaseOutcome(null, false, "", "the job was stopped by the batch system")),
                ExitCodes.Killed);
        }
        if (outcome.ExitCode != 0)
        {
            var report = new JobReport(outcome.ExitCode, outcome.TimedOut, null, false, outcome.LogTail, outcome.FirstErrorLine, [], [], node);
            return (report, outcome.ExitCode is > 0 and < 256 ? outcome.ExitCode.Value : ExitCodes.Killed);
        }
        var copies = new JobOutputCopies(areas);
        var (files, outputProblem) = await copies.DescribeAsync(message, outputDirectory, stopping);
        if (outputProblem is not null)
        {
            return (Failed(outputProblem, outcome: outcome), ExitCodes.Rejected);
        }
        try
        {
            await copies.CopyIntoUnmergedAsync(files, stopping);
        }
        catch (IOException ex)
        {
            return (Failed(ex.Message, siteFailure: true, outcome), ExitCodes.StorageFailed);
        }
        return (new JobReport(0, false, null, false, outcome.LogTail, outcome.FirstErrorLine, files, [], node), ExitCodes.Done);
    }
}
