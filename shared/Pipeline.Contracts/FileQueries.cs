namespace Pipeline.Contracts;

/// <summary>
/// Asks the orchestrator, which owns the files' state, where these files stand. Another stage that needs a file's
/// state (the collector, before it clears a job folder) asks this instead of reading the orchestrator's records.
/// </summary>
public sealed record FileStatesQuery(IReadOnlyList<Guid> FileIds)
{
    /// <summary>How many files one question may name; a caller with more asks in parts.</summary>
    public const int MaxFiles = 500;
}

/// <summary>The orchestrator's answer: one entry per file it knows (an unknown id is left out).</summary>
public sealed record FileStatesAnswer(IReadOnlyList<FileStatus> Files);

/// <summary>
/// A file's state and where it belongs; <paramref name="Final"/> when nothing more will happen to it; <paramref name="Attempt"/>
/// the attempt its current step belongs to (a step of an earlier attempt is stale).
/// </summary>
public sealed record FileStatus(Guid FileId, string Campaign, int Run, string Stream, string State, bool Final, int Attempt = 0);

/// <summary>
/// Asks the orchestrator for files still past their step's deadline <paramref name="DeadlineBefore"/>: the monitor's
/// stuck-file check, answered from the sagas by the service that owns them.
/// </summary>
public sealed record OverdueFilesQuery(DateTimeOffset DeadlineBefore, int Limit);

/// <summary>At most the query's limit of overdue files, in no particular order.</summary>
public sealed record OverdueFilesAnswer(IReadOnlyList<OverdueFile> Files);

public sealed record OverdueFile(Guid FileId, string Campaign, int Run, string State);
