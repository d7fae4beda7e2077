namespace Pipeline.Contracts;

public sealed record FileStaged(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string CachedName,
    long Size,
    string Adler32) : IFileAttemptMessage;
