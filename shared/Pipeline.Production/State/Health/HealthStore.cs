using Pipeline.Contracts;

namespace Pipeline.Production.State;

/// <summary>The health watcher's record: the last heartbeat of every service instance, and alerts raised and resolved.</summary>
public interface IHealthStore
{
    /// <summary>Keeps the latest heartbeat of an instance (an older one arriving late changes nothing).</summary>
    Task RecordHeartbeatAsync(InstanceRecord heartbeat, CancellationToken cancellationToken);

    Task<IReadOnlyList<InstanceRecord>> ListInstancesAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Raises an alert, or refreshes it if one with the same key is active. True if it was not active before
    /// (so that whoever must be told is told once per occurrence).
    /// </summary>
    Task<bool> RaiseAlertAsync(string key, string kind, string severity, string message, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Resolves the active alert with this key; returns it as resolved, or null if there was none.</summary>
    Task<AlertRecord?> ResolveAlertAsync(string key, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>Alerts, newest first: the active ones only, or all including resolved.</summary>
    Task<IReadOnlyList<AlertRecord>> ListAlertsAsync(bool activeOnly, int limit, CancellationToken cancellationToken);
}

public sealed record InstanceRecord(string Instance, string Services, string Host, DateTimeOffset StartedAt, DateTimeOffset LastSeenAt, IReadOnlyList<StageLoad> Load);

public sealed record AlertRecord(string Key, string Kind, string Severity, string Message, DateTimeOffset RaisedAt, DateTimeOffset LastSeenAt, DateTimeOffset? ResolvedAt)
{
    public bool Active => ResolvedAt is null;
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class HealthStoreAccess
{
    extension(StoreBackend backend)
    {
        public IHealthStore Health => backend.Get<IHealthStore>();
    }
}
