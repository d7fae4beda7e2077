namespace Pipeline.Contracts;

/// <summary>
/// A finished job's logs and histograms, copied by its worker from the job's folder (on the worker's own host) into
/// the logs area under <see cref="LogFolder"/>, each with the size and Adler-32 taken in the job's folder: the
/// collector checks each against what the logs area holds and records those that match.
/// </summary>
public sealed record CollectJobLogs(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string LogFolder,
    IReadOnlyList<JobLogFile> Files) : IFileAttemptMessage;

/// <summary>One log or histogram file of a job, by its name in the job's log folder.</summary>
public sealed record JobLogFile(string Name, long Size, string Adler32);
