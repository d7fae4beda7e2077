using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Campaigns;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.SampleExperiment;

namespace Pipeline.Reconstruction;

/// <summary>
/// Runs one reconstruction attempt. The worker first claims the attempt's lease from the orchestrator
/// (so two workers never run the same file at once), renews it while the job runs, and stops the job
/// if it loses the lease. Each attempt writes into its own scratch folder; the orchestrator accepts
/// the outputs of the current attempt only.
/// </summary>
public sealed class ReconstructFileConsumer(
    StorageAreas areas,
    IReleaseRunner runner,
    IRequestClient<ClaimReconstruction> claims,
    IOptions<CampaignOptions> campaign,
    IOptions<ReconstructionOptions> options,
    IOptions<PipelineOptions> pipeline,
    ILogger<ReconstructFileConsumer> logger) : IConsumer<ReconstructFile>
{
    public const string JobLogName = "job.log";

    public async Task Consume(ConsumeContext<ReconstructFile> context)
    {
        var message = context.Message;
        var worker = pipeline.Value.EffectiveInstanceName;
        var claim = await Claim(message, worker, renewal: false, context.CancellationToken);
        if (!claim.Granted)
        {
            logger.LogInformation("Not running {FileId} attempt {Attempt}: {Reason}", message.FileId, message.Attempt, claim.Reason);
            return;
        }

        // A fresh folder per execution: a redelivered attempt never writes over what an earlier execution left.
        var jobDirectory = $"jobs/{message.Campaign}/run{message.Run:D6}/{message.FileId:N}/attempt-{message.Attempt}-{Guid.NewGuid().ToString("N")[..8]}";
        var jobPath = areas.Scratch.PathOf(jobDirectory);
        var outputDirectory = $"{jobDirectory}/out";
        Directory.CreateDirectory(areas.Scratch.PathOf(outputDirectory));
        var logPath = Path.Combine(jobPath, JobLogName);

        var stopwatch = Stopwatch.StartNew();
        using var leaseLost = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        using var stopHeartbeat = new CancellationTokenSource();
        var heartbeat = KeepLeaseAsync(message, worker, claim.LeaseSeconds, leaseLost, stopHeartbeat.Token);
        ReleaseOutcome outcome;
        string? problem;
        try
        {
            (outcome, problem) = await RunReleaseAsync(message, jobPath, outputDirectory, logPath, leaseLost.Token);
        }
        catch (OperationCanceledException) when (leaseLost.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            logger.LogWarning("Stopped {FileId} attempt {Attempt}: the lease was lost, another attempt owns the file", message.FileId, message.Attempt);
            areas.Scratch.DeleteDirectory(jobDirectory);
            return;
        }
        finally
        {
            await stopHeartbeat.CancelAsync();
            await heartbeat;
        }

        var logFiles = Directory.EnumerateFiles(jobPath).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
        await context.Publish(new CollectJobLogs(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, jobDirectory, logFiles));

        if (problem is null)
        {
            var outputs = await DescribeOutputsAsync(message, outputDirectory, context.CancellationToken);
            if (outputs.Problem is null)
            {
                logger.LogInformation("Reconstructed {FileId} attempt {Attempt}: {Outputs} outputs in {Seconds:F1}s", message.FileId, message.Attempt, outputs.Files.Count, stopwatch.Elapsed.TotalSeconds);
                await context.Publish(new FileReconstructed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker, outputs.Files, stopwatch.Elapsed.TotalSeconds));
                areas.Cache.Delete(message.CachedName);
                return;
            }
            problem = outputs.Problem;
        }

        logger.LogWarning("Reconstruction of {FileId} attempt {Attempt} failed: {Reason}", message.FileId, message.Attempt, problem);
        areas.Scratch.DeleteDirectory(outputDirectory);
        await context.Publish(new ReconstructionFailed(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker,
            problem, outcome.ExitCode, outcome.LogTail));
    }

    private async Task<(ReleaseOutcome Outcome, string? Problem)> RunReleaseAsync(ReconstructFile message, string jobPath, string outputDirectory, string logPath, CancellationToken cancellationToken)
    {
        var release = campaign.Value.Release;
        if (message.ReleaseVersion != release.Version)
        {
            return (new ReleaseOutcome(null, false, "", null), $"release {message.ReleaseVersion} is not the approved release ({release.Version}) on this worker");
        }
        if (!areas.Cache.Exists(message.CachedName))
        {
            return (new ReleaseOutcome(null, false, "", null), $"staged input {message.CachedName} is missing from the cache");
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["input"] = areas.Cache.PathOf(message.CachedName),
            ["outdir"] = areas.Scratch.PathOf(outputDirectory),
            ["jobdir"] = jobPath,
            ["run"] = message.Run.ToString(CultureInfo.InvariantCulture),
            ["stream"] = message.Stream,
            ["section"] = message.Section.ToString(CultureInfo.InvariantCulture),
            ["campaign"] = message.Campaign,
            ["attempt"] = message.Attempt.ToString(CultureInfo.InvariantCulture),
            ["datasets"] = SampleReconstruction.FormatDatasets(message.Datasets.Select(d => (d.Name, d.TriggerMask))),
            ["release"] = release.Version,
            ["appdir"] = AppContext.BaseDirectory.TrimEnd('/'),
        };
        ReleaseJob job;
        try
        {
            job = new ReleaseJob(
                ArgumentTemplate.Expand(release.Executable, values),
                [.. release.EffectiveArguments.Select(a => ArgumentTemplate.Expand(a, values))],
                jobPath,
                logPath,
                TimeSpan.FromSeconds(release.TimeoutSeconds));
        }
        catch (FormatException ex)
        {
            return (new ReleaseOutcome(null, false, "", null), ex.Message);
        }
        var outcome = await runner.RunAsync(job, cancellationToken);
        var problem = outcome switch
        {
            { TimedOut: true } => $"timed out after {release.TimeoutSeconds}s",
            { ExitCode: 0 } => null,
            { ExitCode: null } => outcome.FirstErrorLine ?? "the release could not be started",
            _ => $"exit code {outcome.ExitCode}" + (outcome.FirstErrorLine is { } line ? $": {line}" : ""),
        };
        return (outcome, problem);
    }

    private async Task<(IReadOnlyList<OutputFile> Files, string? Problem)> DescribeOutputsAsync(ReconstructFile message, string outputDirectory, CancellationToken cancellationToken)
    {
        var manifestName = $"{outputDirectory}/{SampleReconstruction.ManifestName}";
        if (!areas.Scratch.Exists(manifestName))
        {
            return ([], $"the release wrote no {SampleReconstruction.ManifestName}");
        }
        List<OutputManifestEntry>? manifest;
        try
        {
            await using var stream = areas.Scratch.OpenRead(manifestName);
            manifest = await JsonSerializer.DeserializeAsync<List<OutputManifestEntry>>(stream, SampleReconstruction.Json, cancellationToken);
        }
        catch (JsonException ex)
        {
            return ([], $"{SampleReconstruction.ManifestName} is not valid: {ex.Message}");
        }
        var requested = message.Datasets.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        var files = new List<OutputFile>();
        foreach (var entry in manifest ?? [])
        {
            if (!requested.Contains(entry.Dataset) || AreaNames.Problem(entry.File) is not null || entry.File.Contains('/', StringComparison.Ordinal))
            {
                return ([], $"the release reported an unexpected output '{entry.File}' for dataset '{entry.Dataset}'");
            }
            var name = $"{outputDirectory}/{entry.File}";
            if (!areas.Scratch.Exists(name))
            {
                return ([], $"the release reported output {entry.File} but did not write it");
            }
            var (size, adler) = await areas.Scratch.ChecksumAsync(name, cancellationToken);
            files.Add(new OutputFile($"{message.FileId:N}.a{message.Attempt}.{entry.Dataset}", entry.Dataset, name, size,
                Adler32Checksum.Format(adler), entry.Events, message.Run, message.Section));
        }
        return (files, null);
    }

    private async Task<ReconstructionClaimed> Claim(ReconstructFile message, string worker, bool renewal, CancellationToken cancellationToken)
    {
        var response = await claims.GetResponse<ReconstructionClaimed>(
            new ClaimReconstruction(message.FileId, message.Run, message.Stream, message.Campaign, message.Attempt, worker, renewal),
            cancellationToken,
            RequestTimeout.After(s: options.Value.ClaimTimeoutSeconds));
        return response.Message;
    }

    /// <summary>
    /// Renews the lease every heartbeat. Cancels the job when the orchestrator refuses a renewal, or
    /// when no renewal succeeded for most of a lease: by then the file may have been given to another worker.
    /// </summary>
    private async Task KeepLeaseAsync(ReconstructFile message, string worker, int leaseSeconds, CancellationTokenSource leaseLost, CancellationToken stop)
    {
        var lastRenewed = Stopwatch.StartNew();
        var interval = TimeSpan.FromSeconds(Math.Min(options.Value.HeartbeatSeconds, Math.Max(1, leaseSeconds / 3)));
        var giveUpAfter = TimeSpan.FromSeconds(leaseSeconds * 0.8);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(interval, stop);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            try
            {
                var renewed = await Claim(message, worker, renewal: true, stop);
                if (!renewed.Granted)
                {
                    logger.LogWarning("Lease on {FileId} attempt {Attempt} refused: {Reason}", message.FileId, message.Attempt, renewed.Reason);
                    await leaseLost.CancelAsync();
                    return;
                }
                lastRenewed.Restart();
            }
            catch (Exception ex) when (ex is RequestTimeoutException or RequestException)
            {
                logger.LogWarning("Could not renew the lease on {FileId} attempt {Attempt}: {Error}", message.FileId, message.Attempt, ex.Message);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (lastRenewed.Elapsed > giveUpAfter)
            {
                await leaseLost.CancelAsync();
                return;
            }
        }
    }
}

public sealed class ReconstructFileConsumerDefinition : ConsumerDefinition<ReconstructFileConsumer>
{
    public const string QueueName = "reconstruction";

    private readonly ReconstructionOptions _options;

    public ReconstructFileConsumerDefinition(IOptions<ReconstructionOptions> options)
    {
        _options = options.Value;
        EndpointName = QueueName;
        ConcurrentMessageLimit = _options.EffectiveSlots;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<ReconstructFileConsumer> consumerConfigurator, IRegistrationContext context)
    {
        // Long jobs: take no more messages than there are slots, so queued work stays available to other workers.
        endpointConfigurator.PrefetchCount = _options.EffectiveSlots;
        // A worker crash mid-job is retried here; the lease makes the retry safe.
        endpointConfigurator.UseMessageRetry(r => r.Intervals(1000, 5000));
        endpointConfigurator.UseInMemoryOutbox(context);
    }
}
