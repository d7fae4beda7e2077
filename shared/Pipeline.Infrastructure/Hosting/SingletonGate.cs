namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// The right to do work that must run on exactly one instance of the whole system at a time. Every instance runs the
/// work's loop; only the holder of the gate's lease does a pass, and stamps what it does with <see cref="Token"/>.
/// </summary>
public interface ISingletonGate
{
    /// <summary>The work's name (e.g. "dispatcher").</summary>
    string Name { get; }

    /// <summary>
    /// Whether this instance holds the work now, taking the lease when it is free or renewing it when it is due. Calls
    /// to the store are rate-limited inside: a caller may ask on every pass.
    /// </summary>
    Task<bool> HoldAsync(CancellationToken cancellationToken);

    /// <summary>The fencing token of this instance's term while it holds the work; null when it does not.</summary>
    long? Token { get; }

    /// <summary>Gives the lease up, so that another instance takes the work at once (a clean stop).</summary>
    Task ReleaseAsync(CancellationToken cancellationToken);
}
