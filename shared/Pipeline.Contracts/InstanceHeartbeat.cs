namespace Pipeline.Contracts;

/// <summary>A running service instance says it is alive: which stages it hosts, where, and since when.</summary>
public sealed record InstanceHeartbeat(string Instance, string Services, string Host, DateTimeOffset StartedAt, DateTimeOffset At);
