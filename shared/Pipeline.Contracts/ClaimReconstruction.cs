namespace Pipeline.Contracts;

/// <summary>
/// A worker asks for the lease on one reconstruction attempt before it starts the job, and again
/// periodically while the job runs (a heartbeat). The orchestrator answers with <see cref="ReconstructionClaimed"/>.
/// <see cref="BatchJob"/> names the batch job that runs the attempt (e.g. <c>slurm:1234</c>): such a job outlives its
/// worker, so when its lease runs out another worker may still adopt it for a grace period before the file is
/// given a new attempt.
/// </summary>
public sealed record ClaimReconstruction(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string Worker,
    bool IsRenewal,
    string? BatchJob = null) : IFileAttemptMessage;

/// <summary>
/// The answer to a claim. A worker that is refused, or cannot renew before its lease runs out,
/// stops the job: another attempt may own the file by then.
/// </summary>
public sealed record ReconstructionClaimed(Guid FileId, int Attempt, bool Granted, int LeaseSeconds, string? Reason);
