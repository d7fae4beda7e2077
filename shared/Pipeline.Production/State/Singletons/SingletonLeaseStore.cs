namespace Pipeline.Production.State;

/// <summary>
/// A lease on work that must run on exactly one instance at a time (the dispatcher, the campaign feeder, the sweeps).
/// <see cref="Token"/> grows by one each time the lease passes to a holder that did not hold it a moment before: a
/// write or message stamped with an older token comes from a deposed holder, and is refused.
/// </summary>
public sealed record SingletonLease(string Name, string Holder, long Token, DateTimeOffset ExpiresAt);

/// <summary>The singletons' leases, taken and renewed with one atomic write each.</summary>
public interface ISingletonLeaseStore
{
    /// <summary>
    /// Takes the lease for <paramref name="holder"/> until <paramref name="now"/> + <paramref name="duration"/> if it is
    /// free, expired or already its own (renewing it); returns the lease as it stands after the call, which names
    /// another holder when that one still holds it. MongoDB and PostgreSQL measure expiry on the server's clock, SQLite
    /// on the caller's (one machine's).
    /// </summary>
    Task<SingletonLease> AcquireAsync(string name, string holder, TimeSpan duration, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Gives the lease up at once, if <paramref name="holder"/> still holds it with <paramref name="token"/> (a clean stop).</summary>
    Task ReleaseAsync(string name, string holder, long token, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The lease's current state, or null if nobody ever took it.</summary>
    Task<SingletonLease?> GetAsync(string name, CancellationToken cancellationToken);

    Task<IReadOnlyList<SingletonLease>> ListAsync(CancellationToken cancellationToken);
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class SingletonLeaseStoreAccess
{
    extension(StoreBackend backend)
    {
        public ISingletonLeaseStore SingletonLeases => backend.Get<ISingletonLeaseStore>();
    }
}
