namespace Pipeline.Contracts;

/// <summary>
/// A raw file entered a campaign: the first event of its saga. <see cref="RunConditions"/> ("name=value,..." in name
/// order) are the run's recorded conditions, for a Monte Carlo file that simulates the run under them.
/// </summary>
public sealed record FileRegistered(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string LogicalName,
    int Section,
    long Size,
    string Adler32,
    long Events,
    string? RunConditions = null) : IFileMessage;
