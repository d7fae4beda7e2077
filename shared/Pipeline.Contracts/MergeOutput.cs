namespace Pipeline.Contracts;

/// <summary>Add one reconstruction output to its dataset's merge buffer (idempotent per output id).</summary>
public sealed record MergeOutput(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string RawName,
    OutputFile Output) : IFileMessage;
