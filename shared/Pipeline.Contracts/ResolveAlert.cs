namespace Pipeline.Contracts;

/// <summary>A stage tells the monitor that what it alerted about is mended: the active alert with this key is resolved.</summary>
public sealed record ResolveAlert(string Key, DateTimeOffset At);
