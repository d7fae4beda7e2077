using Pipeline.Contracts;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Who may run a file's reconstruction: a worker claims the current attempt's lease and renews it while the job runs.
/// A claim is granted to the holder, to anyone once the holder's lease ran out, or to the first claimant; a renewal
/// only to the holder. A batch job runs on without its worker: past its lease, another worker may adopt it until the
/// adoption grace is over too, and only then does the watchdog give the file a new attempt.
/// </summary>
public sealed class ReconstructionLeases(OrchestratorOptions options)
{
    public int LeaseSeconds => options.LeaseSeconds;

    public static bool CanGrant(FileState saga, ClaimReconstruction claim, DateTimeOffset now) =>
        saga.Attempt == claim.Attempt
        && (saga.Worker is null || saga.Worker == claim.Worker || saga.LeaseExpiresAt < now)
        && !(claim.IsRenewal && saga.Worker != claim.Worker);

    public static string RefusalReason(FileState saga, ClaimReconstruction claim) =>
        saga.Attempt != claim.Attempt ? $"attempt {claim.Attempt} is stale; current attempt is {saga.Attempt}"
        : claim.IsRenewal && saga.Worker != claim.Worker ? $"lease now held by {saga.Worker ?? "nobody"}"
        : $"lease held by {saga.Worker} until {saga.LeaseExpiresAt:O}";

    /// <summary>Gives (or renews) the lease to the claimant; the file's deadline follows the lease.</summary>
    public void Grant(FileState saga, ClaimReconstruction claim, DateTimeOffset now)
    {
        if (saga.Worker != claim.Worker || saga.CurrentState != FileStates.Reconstructing)
        {
            saga.Because = $"claimed by {claim.Worker}";
        }
        saga.Worker = claim.Worker;
        // A renewal naming only the executor (the job is submitted but not yet known by id) keeps the id known before.
        saga.BatchJob = claim.BatchJob is { } named && (named.Contains(':', StringComparison.Ordinal) || saga.BatchJob is null || !claim.IsRenewal)
            ? named
            : claim.IsRenewal ? saga.BatchJob : null;
        saga.LeaseExpiresAt = now.AddSeconds(options.LeaseSeconds);
        saga.Deadline = saga.BatchJob is null ? saga.LeaseExpiresAt : saga.LeaseExpiresAt.Value.AddSeconds(options.BatchAdoptionSeconds);
        saga.UpdatedAt = now;
    }
}
