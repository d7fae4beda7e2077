namespace Pipeline.Contracts;

/// <summary>
/// A stage asks the monitor to raise an alert, or to refresh it if one with the same key is active: the monitor keeps
/// the alerts, and tells people once per occurrence. <paramref name="Severity"/> is "warning" or "critical".
/// </summary>
public sealed record RaiseAlert(string Key, string Kind, string Severity, string Message, DateTimeOffset At);
