namespace Pipeline.Contracts;

/// <summary>Copy a raw file from the archive into the disk cache and verify its checksum.</summary>
public sealed record StageFile(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string LogicalName,
    long Size,
    string Adler32) : IFileAttemptMessage;
