namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// The right to do work that must run on exactly one instance of the whole system at a time. Every instance runs the
/// work's loop; only the holder of the gate's lease does a pass, and stamps what it writes with <see cref="Fence"/>.
/// </summary>
public interface ISingletonGate
{
    /// <summary>The work's name (e.g. "dispatcher").</summary>
    string Name { get; }

    /// <summary>
    /// Whether this instance holds the work now, taking the lease when it is free. Calls to the store are rate-limited
    /// inside: a caller may ask on every pass. While held, the lease is renewed on a timer of its own, whatever the passes do.
    /// </summary>
    Task<bool> HoldAsync(CancellationToken cancellationToken);

    /// <summary>The fencing token of this instance's term while it holds the work; null when it does not.</summary>
    long? Token { get; }

    /// <summary>What this instance's writes carry while it holds the work, for the store to refuse them once stale; null when it does not.</summary>
    SingletonFence? Fence { get; }

    /// <summary>Cancelled when this instance's term ends (the lease lost, not renewed in time, or given up): its work must stop.</summary>
    CancellationToken Lost { get; }

    /// <summary>Gives the lease up, so that another instance takes the work at once (a clean stop).</summary>
    Task ReleaseAsync(CancellationToken cancellationToken);
}

/// <summary>
/// A singleton holder's term: the lease's name, the holder and its token. A store refuses a write that carries a fence
/// no longer current (another instance took over, or the lease ran out) in the same atomic step as the write.
/// </summary>
public sealed record SingletonFence(string Name, string Holder, long Token);

/// <summary>A write refused because the singleton term it was made in has ended: another instance does the work now.</summary>
public sealed class StaleFenceException(SingletonFence fence)
    : Exception($"Refused a write of singleton {fence.Name} under token {fence.Token}: that term has ended, another instance holds the work (or nobody, after the lease ran out).")
{
    public SingletonFence Fence { get; } = fence;
}
