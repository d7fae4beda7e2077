namespace Pipeline.Contracts;

public sealed record ReconstructionFailed(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string Worker,
    string Reason,
    int? ExitCode,
    string LogTail) : IFileMessage;
