namespace Pipeline.Contracts;

public sealed record FileReconstructed(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    string Worker,
    IReadOnlyList<OutputFile> Outputs,
    double Seconds) : IFileAttemptMessage;

/// <summary>One dataset's output of one reconstruction attempt, waiting in the scratch area.</summary>
public sealed record OutputFile(
    string OutputId,
    string Dataset,
    string Name,
    long Size,
    string Adler32,
    long Events,
    int Run,
    int Section);
