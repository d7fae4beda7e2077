namespace Pipeline.Contracts;

/// <summary>
/// An operator asks a failed file to start again from stage-in with a fresh attempt budget, optionally
/// with more attempts than the campaign grants and a longer reconstruction time limit.
/// </summary>
public sealed record RetryFile(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string RequestedBy,
    int ExtraAttempts = 0,
    int? TimeoutSeconds = null) : IFileMessage;
