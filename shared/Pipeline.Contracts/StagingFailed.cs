namespace Pipeline.Contracts;

public sealed record StagingFailed(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string Reason) : IFileAttemptMessage;
