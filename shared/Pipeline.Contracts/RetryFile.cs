namespace Pipeline.Contracts;

/// <summary>An operator asks a failed file to start again from stage-in with a fresh attempt budget.</summary>
public sealed record RetryFile(Guid FileId, int Run, string Stream, string Campaign, string RequestedBy) : IFileMessage;
