namespace Pipeline.Contracts;

/// <summary>
/// A running service instance says it is alive: which stages it hosts, where, since when, and how busy its
/// limited resources are (reconstruction slots, archive writers).
/// </summary>
public sealed record InstanceHeartbeat(string Instance, string Services, string Host, DateTimeOffset StartedAt, DateTimeOffset At, IReadOnlyList<StageLoad>? Load = null);

/// <summary>How many of a stage's slots in one instance are in use, of how many.</summary>
public sealed record StageLoad(string Stage, int Busy, int Capacity);
