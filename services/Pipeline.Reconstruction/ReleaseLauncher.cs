using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Campaigns;
using Pipeline.Reconstruction.Batch;

namespace Pipeline.Reconstruction;

/// <summary>How a release's run ended, what went wrong if anything, and the time limit it ran under.</summary>
public sealed record JobResult(ReleaseOutcome Outcome, string? Problem, int TimeLimitSeconds)
{
    public static JobResult NotRun(string problem) => new(new ReleaseOutcome(null, false, "", null), problem, 0);
}

/// <summary>
/// Runs the campaign's approved release on one attempt's input, or follows a batch job adopted from another worker, and
/// says what went wrong. The release comes from the campaign as stored, never from the request, which names it only to
/// be checked; its arguments are an expanded list, never a shell string.
/// </summary>
public sealed class ReleaseLauncher(
    StorageAreas areas, IReleaseRunner runner, CampaignDirectory campaigns, JobInputs inputs, IOptions<ReconstructionOptions> options, IOptions<RemoteStorageOptions> remote)
{

    /// <summary>The request a job was run for, kept in its folder (what a restarted worker adopts a batch job from).</summary>
    public const string RequestName = "request.json";

    public async Task<JobResult> RunAsync(ReconstructFile message, string jobPath, string outputDirectory, string logPath, CancellationToken cancellationToken)
    {
        var campaign = (await campaigns.GetAsync(message.Campaign, cancellationToken))?.Definition;
        if (campaign?.Release is not { Version: { } version, Executable: { } executable } release)
        {
            return JobResult.NotRun($"campaign {message.Campaign} is not known");
        }
        if (message.ReleaseVersion != version)
        {
            return JobResult.NotRun($"release {message.ReleaseVersion} is not the approved release ({version}) of campaign {message.Campaign}");
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["run"] = message.Run.ToString(CultureInfo.InvariantCulture),
            ["stream"] = message.Stream,
            ["section"] = message.Section.ToString(CultureInfo.InvariantCulture),
            ["campaign"] = message.Campaign,
            ["attempt"] = message.Attempt.ToString(CultureInfo.InvariantCulture),
            ["datasets"] = ReleaseManifest.FormatDatasets(message.Datasets),
            ["release"] = version,
            ["appdir"] = AppContext.BaseDirectory.TrimEnd('/'),
            ["calibration"] = message.CalibrationTag ?? "",
            ["events"] = message.Events.ToString(CultureInfo.InvariantCulture),
            ["seed"] = SimulationSeed(message).ToString(CultureInfo.InvariantCulture),
            ["conditions"] = campaign.IsMonteCarlo ? message.RunConditions ?? "" : "",
        };
        // The orchestrator sets every request's limit (its campaign's, as measured, or the file's own); a request of an
        // older orchestrator without one gets the release's.
        var timeoutSeconds = message.TimeoutSeconds ?? release.EffectiveTimeoutSeconds;
        var arguments = release.Arguments ?? [];
        JobSpec? spec = null;
        if (runner.MovesJobBytes)
        {
            // The job fetches its input and copies its outputs on its compute node: the node fills in its own folders.
            // The templates are expanded here once with stand-ins, so that a bad one fails the attempt before it is submitted.
            spec = new JobSpec(message, Path.GetRelativePath(areas.Scratch.RootPath, jobPath).Replace('\\', '/'), executable, arguments,
                new Dictionary<string, string>(values, StringComparer.Ordinal), timeoutSeconds,
                JobSpec.AreasOf(areas), remote.Value, options.Value.VerifyInput);
            foreach (var placeholder in JobSpec.NodePlaceholders)
            {
                values[placeholder] = $"<{placeholder} on the node>";
            }
        }
        else
        {
            var (inputPath, inputProblem) = await inputs.PrepareAsync(message, jobPath, cancellationToken);
            if (inputProblem is not null)
            {
                return JobResult.NotRun(inputProblem);
            }
            values["input"] = inputPath;
            values["outdir"] = areas.Scratch.PathOf(outputDirectory);
            values["jobdir"] = jobPath;
        }
        ReleaseJob job;
        try
        {
            job = new ReleaseJob(
                ArgumentTemplate.Expand(executable, values),
                [.. arguments.Select(a => ArgumentTemplate.Expand(a, values))],
                jobPath, logPath, TimeSpan.FromSeconds(timeoutSeconds), message.FileId, message.Attempt, message.Campaign, campaign.Batch, spec,
                spec is null ? null : JobReport.NameIn(spec.JobDirectory));
        }
        catch (FormatException ex)
        {
            return JobResult.NotRun(ex.Message);
        }
        // What was asked, kept with the job: a worker that restarts while the batch system still runs the job adopts it from this.
        await File.WriteAllTextAsync(Path.Combine(jobPath, RequestName), JsonSerializer.Serialize(new JobRequest(message, timeoutSeconds)), cancellationToken);
        var outcome = await runner.RunAsync(job, cancellationToken);
        return new JobResult(outcome, ProblemOf(outcome, timeoutSeconds), timeoutSeconds);
    }

    /// <summary>Follows a batch job another worker (or this one before a restart) submitted, to its end.</summary>
    public async Task<JobResult> FollowAsync(ReconstructFile message, AdoptedJob adopted, string jobPath, string logPath, CancellationToken cancellationToken)
    {
        var job = new ReleaseJob("", [], jobPath, logPath, TimeSpan.FromSeconds(adopted.TimeLimitSeconds), message.FileId, message.Attempt, message.Campaign,
            ReportName: runner.MovesJobBytes ? JobReport.NameIn(adopted.JobDirectory) : null);
        var outcome = await runner.FollowAsync(job, adopted.BatchJobId, cancellationToken);
        return new JobResult(outcome, ProblemOf(outcome, adopted.TimeLimitSeconds), adopted.TimeLimitSeconds);
    }

    /// <summary>
    /// The seed of a simulated file: the same for every attempt of it (a retry generates the same events), and
    /// different for every file, campaign and run.
    /// </summary>
    public static int SimulationSeed(ReconstructFile message) =>
        (int)(Adler32Checksum.Of(System.Text.Encoding.UTF8.GetBytes($"{message.Campaign}/{message.FileId:N}")) & int.MaxValue);

    private static string? ProblemOf(ReleaseOutcome outcome, int timeoutSeconds) => outcome switch
    {
        { SiteFailure: true, BatchState: "CANCELLED", BatchReason: { } reason } when reason.StartsWith(SlurmQueueKeeper.CancelledBecause, StringComparison.Ordinal) =>
            $"batch job {outcome.BatchJobId} {reason}",
        // A wrapped job that ran but could not report: the line says why.
        { SiteFailure: true, BatchState: "COMPLETED" or "FAILED", FirstErrorLine: { } line } => $"batch job {outcome.BatchJobId} on {NodeOf(outcome)}: {line}",
        { SiteFailure: true } => $"the site failed batch job {outcome.BatchJobId}: {outcome.BatchState} ({outcome.BatchReason ?? outcome.FirstErrorLine}) on {NodeOf(outcome)}",
        { BatchState: "OUT_OF_MEMORY" } => $"batch job {outcome.BatchJobId} ran out of memory on {NodeOf(outcome)}",
        { TimedOut: true } => $"timed out after {timeoutSeconds}s",
        { ExitCode: 0 } => null,
        { ExitCode: null } => outcome.FirstErrorLine ?? "the release could not be started",
        _ => $"exit code {outcome.ExitCode}" + (outcome.FirstErrorLine is { } line ? $": {line}" : ""),
    };

    private static string NodeOf(ReleaseOutcome outcome) => string.IsNullOrEmpty(outcome.BatchNode) ? "no node" : $"node {outcome.BatchNode}";
}
