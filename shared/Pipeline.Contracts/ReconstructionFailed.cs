namespace Pipeline.Contracts;

/// <summary>
/// A reconstruction attempt failed. <see cref="SiteFailure"/>: the site failed it (a batch node lost, a job preempted or
/// cancelled by the site), not the release, so it is retried without spending the file's attempts.
/// <see cref="TimedOutAfterSeconds"/>: the job reached its time limit, this one; it is retried once with a longer one.
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
    int? TimedOutAfterSeconds = null) : IFileAttemptMessage;
