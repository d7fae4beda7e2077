namespace Pipeline.Contracts;

/// <summary>A raw file entered a campaign: the first event of its saga.</summary>
public sealed record FileRegistered(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string LogicalName,
    int Section,
    long Size,
    string Adler32,
    long Events) : IFileMessage;
