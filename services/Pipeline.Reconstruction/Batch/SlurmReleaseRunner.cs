using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// Runs a release as a Slurm batch job. The job script holds the release's command with every value single-quoted, so
/// nothing from a run, a file name or a campaign reaches a shell unquoted; the job runs in the attempt's folder and
/// writes its output there (job.log, job.err), where the worker collects it as from a local run. The job's end comes
/// from Slurm's own state: COMPLETED and FAILED are the release's outcome, TIMEOUT its time limit, OUT_OF_MEMORY its
/// memory; a node failure, a preemption, a boot failure, a cancellation by the site or a job the cluster lost are the
/// site's failures (<see cref="ReleaseOutcome.SiteFailure"/>), which the orchestrator retries without spending the
/// file's attempts. A job whose lease is lost is cancelled; one left at shutdown keeps running.
/// A job given a <see cref="JobSpec"/> runs the job wrapper (<see cref="JobWrapper"/>) on its node instead, in a folder of
/// the node's own: it moves its own bytes through storage, and its end is read from the report it left there.
/// </summary>
public sealed class SlurmReleaseRunner(
    SlurmClient slurm, SlurmJobWatch watch, StorageAreas areas, IOptions<SlurmOptions> options, IHostApplicationLifetime lifetime, ILogger<SlurmReleaseRunner> logger)
    : IReleaseRunner
{
    public const string ScriptName = "job.sh";
    public const string ErrorLogName = "job.err";
    private const int TailLines = 20;

    private static readonly HashSet<string> SiteStates = new(StringComparer.Ordinal)
    {
        "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "CANCELLED", "DEADLINE", "REVOKED", SlurmJobWatch.LostState,
    };

    public async Task<ReleaseOutcome> RunAsync(ReleaseJob job, CancellationToken cancellationToken)
    {
        var name = slurm.JobName(job.FileId, job.Attempt);
        var script = Path.Combine(job.WorkingDirectory, ScriptName);
        var submission = job.Wrapped is { } spec
            // The wrapper writes its own lines into the job's log, which it ships: Slurm's copies of its output would stay on the node.
            ? new SlurmSubmission(name, script, options.Value.NodeFolder, "/dev/null", "/dev/null", job.Timeout, job.Resources, spec.JobDirectory)
            : new SlurmSubmission(name, script, job.WorkingDirectory, job.LogPath, Path.Combine(job.WorkingDirectory, ErrorLogName), job.Timeout, job.Resources);
        await File.WriteAllTextAsync(script, job.Wrapped is { } wrapped ? WrapperScript(wrapped, name, options.Value.EffectiveWrapperCommand) : Script(job, name), cancellationToken);
        long id;
        try
        {
            id = await slurm.SubmitAsync(submission, cancellationToken);
        }
        catch (SlurmException ex)
        {
            return new ReleaseOutcome(null, false, "", ex.Message, BatchState: "NOT_SUBMITTED", SiteFailure: true);
        }
        logger.LogInformation("Submitted {FileId} attempt {Attempt} as Slurm job {JobId}", job.FileId, job.Attempt, id);
        return await FollowAsync(job, id, cancellationToken);
    }

    /// <summary>
    /// The job's id once submitted; before that (the first claim) just "slurm", so that the orchestrator gives the file
    /// the adoption grace from the start: a worker that dies right after sbatch leaves a job to be adopted.
    /// </summary>
    public string? BatchJobOf(Guid fileId, int attempt) => watch.IdOf(slurm.JobName(fileId, attempt)) is { } id ? BatchJobName(id) : Executor;

    private const string Executor = "slurm";

    public string BatchJobName(long batchJobId) => $"{Executor}:{batchJobId}";

    public bool JobsOutliveWorker => true;

    public bool MovesJobBytes => true;

    public async Task<ReleaseOutcome> FollowAsync(ReleaseJob job, long id, CancellationToken cancellationToken)
    {
        SlurmJob ended;
        try
        {
            ended = await watch.WaitAsync(id, slurm.JobName(job.FileId, job.Attempt), cancellationToken, job.Campaign);
        }
        catch (OperationCanceledException) when (!lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // The lease is lost: another attempt owns the file, so this job's work would be thrown away.
            await slurm.CancelAsync([id], CancellationToken.None);
            throw;
        }
        if (job.ReportName is { } reportName)
        {
            return await WrappedOutcomeAsync(job, id, ended, reportName);
        }
        var (tail, firstError) = await ReadLogsAsync(job);
        var outcome = ended.State switch
        {
            "COMPLETED" => new ReleaseOutcome(0, false, tail, firstError),
            "FAILED" when ended.Signal > 0 => new ReleaseOutcome(null, false, tail, $"the job was killed by signal {ended.Signal}"),
            "FAILED" => new ReleaseOutcome(ended.ExitCode, false, tail, firstError),
            "TIMEOUT" => new ReleaseOutcome(null, true, tail, firstError),
            _ => new ReleaseOutcome(null, false, tail, firstError, SiteFailure: SiteStates.Contains(ended.State)),
        };
        return outcome with { BatchJobId = id, BatchState = ended.State, BatchReason = ended.Reason, BatchNode = ended.Node };
    }

    /// <summary>
    /// The end of a wrapped job: the wrapper's report when the job ran to its end (COMPLETED or FAILED); Slurm's state
    /// otherwise (a time limit, the memory, the site), with what the report says if the wrapper wrote one before it was
    /// stopped. A job that ran but left no report (the wrapper could not start, or could not reach storage from the node)
    /// is the site's failure.
    /// </summary>
    private async Task<ReleaseOutcome> WrappedOutcomeAsync(ReleaseJob job, long id, SlurmJob ended, string reportName)
    {
        var (report, unreadable) = await ReadReportAsync(reportName);
        var tail = report?.LogTail ?? "";
        var firstError = report?.Problem ?? report?.FirstErrorLine;
        var outcome = ended.State switch
        {
            "COMPLETED" or "FAILED" when report is not null => new ReleaseOutcome(report.ExitCode, report.TimedOut, tail, report.FirstErrorLine, SiteFailure: report.SiteFailure),
            "COMPLETED" or "FAILED" => new ReleaseOutcome(null, false, "",
                $"the job ended {ended.State} (exit code {ended.ExitCode}) without its report {reportName} in the unmerged area ({unreadable}): " +
                "the job wrapper could not start on the node, or could not reach storage from it", SiteFailure: true),
            "TIMEOUT" => new ReleaseOutcome(null, true, tail, firstError),
            _ => new ReleaseOutcome(null, false, tail, firstError, SiteFailure: SiteStates.Contains(ended.State)),
        };
        if (report is null)
        {
            logger.LogWarning("Slurm job {JobId} of {FileId} attempt {Attempt} ended {State} and left no report: {Reason}", id, job.FileId, job.Attempt, ended.State, unreadable);
        }
        return outcome with { BatchJobId = id, BatchState = ended.State, BatchReason = ended.Reason, BatchNode = ended.Node, Report = report };
    }

    private async Task<(JobReport? Report, string Reason)> ReadReportAsync(string name)
    {
        try
        {
            if (!await areas.Unmerged.ExistsAsync(name, CancellationToken.None))
            {
                return (null, "not there");
            }
            await using var stream = await areas.Unmerged.OpenReadAsync(name, CancellationToken.None);
            return await JsonSerializer.DeserializeAsync<JobReport>(stream, JobSpec.Json) is { } report ? (report, "") : (null, "empty");
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or JsonException)
        {
            return (null, ex.Message);
        }
    }

    /// <summary>
    /// The script of a wrapped job: the wrapper's command, <c>job</c> and the job's spec as one argument, each in single
    /// quotes (the spec is JSON: whatever its values hold, the shell takes it as one word, verbatim).
    /// </summary>
    public static string WrapperScript(JobSpec spec, string name, IReadOnlyList<string> command)
    {
        var text = new StringBuilder();
        text.Append("#!/bin/bash\n");
        text.Append("# Job ").Append(Quote(name)).Append(", written by Pipeline. Every value below is single-quoted: the shell runs it verbatim.\n");
        text.Append("exec");
        foreach (var word in command.Append(JobWrapper.Command).Append(JsonSerializer.Serialize(spec, JobSpec.Json)))
        {
            text.Append(' ').Append(Quote(word));
        }
        return text.Append('\n').ToString();
    }

    /// <summary>
    /// The job script: the release's executable and arguments, each in single quotes (a quote inside becomes '\''), so
    /// the shell takes every value as one word, verbatim, whatever it holds.
    /// </summary>
    public static string Script(ReleaseJob job, string name)
    {
        var text = new StringBuilder();
        text.Append("#!/bin/bash\n");
        text.Append("# Job ").Append(Quote(name)).Append(", written by Pipeline. Every value below is single-quoted: the shell runs it verbatim.\n");
        text.Append("exec ").Append(Quote(job.Executable));
        foreach (var argument in job.Arguments)
        {
            text.Append(' ').Append(Quote(argument));
        }
        return text.Append('\n').ToString();
    }

    public static string Quote(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    private static async Task<(string Tail, string? FirstError)> ReadLogsAsync(ReleaseJob job)
    {
        var output = File.Exists(job.LogPath) ? await File.ReadAllLinesAsync(job.LogPath) : [];
        var errorPath = Path.Combine(job.WorkingDirectory, ErrorLogName);
        var errors = File.Exists(errorPath) ? await File.ReadAllLinesAsync(errorPath) : [];
        var firstError = errors.FirstOrDefault(l => l.Length > 0) ?? output.FirstOrDefault(l => l.Contains("error", StringComparison.OrdinalIgnoreCase));
        return (string.Join('\n', output.Concat(errors).TakeLast(TailLines)), firstError);
    }
}
