namespace Pipeline.Contracts;

/// <summary>
/// The watchdog saw no progress on a file for longer than its stage allows. Acted on only if the
/// saga is still at the version the watchdog saw, so a file that moved meanwhile is left alone.
/// </summary>
public sealed record FileStalled(Guid FileId, int Run, string Stream, string Campaign, int ObservedVersion) : IFileMessage;
