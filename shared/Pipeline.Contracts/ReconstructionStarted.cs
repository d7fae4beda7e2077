namespace Pipeline.Contracts;

/// <summary>A worker took an attempt; sent again periodically as a heartbeat while the job runs.</summary>
public sealed record ReconstructionStarted(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string Worker,
    bool IsHeartbeat) : IFileMessage;
