using System.Text.Json;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// Finds this system's Slurm jobs that no worker of this process follows, and adopts them: at start-up (the jobs a
/// restarted worker left in the queue) and every <see cref="SlurmOptions.AdoptSeconds"/> (the jobs of a worker that
/// died). A job is adopted from the request kept in its folder, under a claim the orchestrator grants only to the
/// lease holder's name or once the holder's lease ran out, so no job is followed twice and none is submitted again.
/// A job whose attempt was superseded is cancelled if it still runs: its result would be ignored.
/// </summary>
public sealed class SlurmAdoption(
    SlurmClient slurm, SlurmJobWatch watch, ReconstructionWorker worker, StorageAreas areas, IOptions<SlurmOptions> options, TimeProvider time, ILogger<SlurmAdoption> logger)
    : PeriodicWork(time, logger)
{
    // Jobs settled for good (adopted, superseded, not this system's): not looked at again while Slurm lists them.
    private readonly HashSet<long> _settled = [];

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.AdoptSeconds);

    protected override string What => "Looking for batch jobs to adopt";

    protected override bool IsExpectedFailure(Exception failure) => SlurmClient.IsExpectedFailure(failure);

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => AdoptOrphansAsync(stoppingToken);

    /// <summary>One look at the cluster's jobs of this system; returns how many were adopted.</summary>
    public async Task<int> AdoptOrphansAsync(CancellationToken cancellationToken)
    {
        var listed = await slurm.ListAsync(cancellationToken);
        _settled.IntersectWith(listed.Select(j => j.Id));
        watch.ForgetAllBut([.. listed.Select(j => j.Id)]);
        var adopted = 0;
        foreach (var job in listed.Where(j => !watch.Knows(j.Id) && !_settled.Contains(j.Id)))
        {
            // A wrapped job runs in a folder of its node and names its folder in the worker's scratch in its comment;
            // one submitted by an earlier version runs in that folder.
            var folder = job.Comment.Length > 0 ? job.Comment : Path.GetRelativePath(areas.Scratch.RootPath, job.WorkDirectory);
            var request = AreaNames.Problem(folder) is not null ? null : await RequestOfAsync(job, areas.Scratch.PathOf(folder), cancellationToken);
            if (request is null)
            {
                _settled.Add(job.Id);
                continue;
            }
            switch (await worker.AdoptAsync(request, folder, job.Id, cancellationToken))
            {
                case AdoptionOutcome.Adopted:
                    adopted++;
                    _settled.Add(job.Id);
                    break;
                case AdoptionOutcome.Superseded:
                    _settled.Add(job.Id);
                    if (!job.HasEnded)
                    {
                        Logger.LogInformation("Cancelling batch job {JobId}: its attempt {Attempt} of {FileId} was superseded", job.Id, request.Message.Attempt, request.Message.FileId);
                        await slurm.CancelAsync([job.Id], cancellationToken);
                    }
                    break;
                case AdoptionOutcome.AlreadyFollowed:
                    _settled.Add(job.Id);
                    break;
            }
        }
        return adopted;
    }

    private async Task<JobRequest?> RequestOfAsync(SlurmJob job, string folder, CancellationToken cancellationToken)
    {
        var path = Path.Combine(folder, ReleaseLauncher.RequestName);
        if (slurm.Owner(job.Name) is not { } owner || !File.Exists(path))
        {
            return null;
        }
        try
        {
            await using var file = File.OpenRead(path);
            var request = await JsonSerializer.DeserializeAsync<JobRequest>(file, cancellationToken: cancellationToken);
            // The folder must hold the request of the job's own file and attempt.
            return request?.Message is { } message && (message.FileId, message.Attempt) == owner ? request : null;
        }
        catch (JsonException ex)
        {
            Logger.LogWarning("Batch job {JobId}'s request {Path} is unreadable: {Reason}", job.Id, path, ex.Message);
            return null;
        }
    }
}
