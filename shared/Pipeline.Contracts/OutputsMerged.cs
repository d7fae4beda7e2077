namespace Pipeline.Contracts;

/// <summary>Some of a raw file's outputs are now inside a merged file.</summary>
public sealed record OutputsMerged(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string MergedName,
    IReadOnlyList<string> OutputIds) : IFileMessage;
