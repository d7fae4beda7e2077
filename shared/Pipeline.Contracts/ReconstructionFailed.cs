namespace Pipeline.Contracts;

/// <summary>
/// A reconstruction attempt failed. <see cref="SiteFailure"/>: the site failed it (a batch node lost, a job preempted or
/// cancelled by the site), not the release, so it is retried without spending the file's attempts.
/// <see cref="TimedOutAfterSeconds"/>: the job reached its time limit, this one; it is retried once with a longer one.
/// <see cref="CampaignPaused"/>: the worker took the job out of the batch queue because the file's campaign is paused; the
/// file is held even if the orchestrator has not read the pause yet (each process reads it on its own).
/// </summary>
public sealed record ReconstructionFailed(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string Worker,
    string Reason,
    int? ExitCode,
    string LogTail,
    bool SiteFailure = false,
    int? TimedOutAfterSeconds = null,
    bool CampaignPaused = false) : IFileAttemptMessage;
