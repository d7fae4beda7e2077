namespace Pipeline.Contracts;

/// <summary>
/// A file's step waits on the storage behind it: its raw file being recalled from tape, or its outputs' merged file
/// being migrated to tape. The reason goes into the file's history; a wait with an end (<paramref name="Until"/>) also
/// holds off the watchdog until then.
/// </summary>
public sealed record FileWaiting(Guid FileId, int Run, string Stream, string Campaign, int Attempt, string Reason, DateTimeOffset? Until) : IFileAttemptMessage;
