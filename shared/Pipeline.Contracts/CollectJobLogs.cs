namespace Pipeline.Contracts;

/// <summary>Copy a finished job's logs and histograms from scratch to the logs area.</summary>
public sealed record CollectJobLogs(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string JobDirectory,
    IReadOnlyList<string> Files) : IFileAttemptMessage;
