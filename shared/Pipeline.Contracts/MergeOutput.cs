namespace Pipeline.Contracts;

/// <summary>
/// Add one reconstruction output to its dataset's merge buffer (idempotent per output id). <see cref="RawAdler32"/>
/// is the raw file's catalogued checksum, which the merged file's manifest records beside each source.
/// </summary>
public sealed record MergeOutput(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string RawName,
    OutputFile Output,
    string? RawAdler32 = null) : IFileMessage;
