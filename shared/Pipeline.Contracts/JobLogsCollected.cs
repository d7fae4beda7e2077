namespace Pipeline.Contracts;

public sealed record JobLogsCollected(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    IReadOnlyList<string> LogNames) : IFileAttemptMessage;
