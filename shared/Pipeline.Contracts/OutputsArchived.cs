namespace Pipeline.Contracts;

/// <summary>Some of a raw file's outputs are inside a merged file that is now archived and verified.</summary>
public sealed record OutputsArchived(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string MergedName,
    IReadOnlyList<string> OutputIds) : IFileMessage;
