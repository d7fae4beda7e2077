using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.State;

/// <summary>
/// Flow control that every instance of every service shares: the bytes each bounded area holds (a ledger
/// of reservations, so that admissions by many instances cannot overshoot together), the archive writers
/// ("movers") held, and the settings operators changed at run time.
/// </summary>
public interface IFlowStore
{
    /// <summary>
    /// Reserves room for one file in an area, unless the area is blocked: it blocks when its bytes reach the
    /// high-water mark and unblocks when they fall to the low-water mark. A reservation already held under
    /// the same name is admitted again (its size updated). Every decision is taken atomically, so the area
    /// never holds more than its high-water mark plus one file.
    /// </summary>
    Task<bool> TryReserveAsync(string area, string name, long bytes, AreaLimits limits, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>
    /// Replaces one reservation by the files it turned into (a job's estimate by its real outputs), without
    /// asking for admission: the room was granted when the first was reserved.
    /// </summary>
    Task ReplaceReservationAsync(string area, string name, IReadOnlyList<AreaFile> files, DateTimeOffset at, CancellationToken cancellationToken);

    /// <summary>
    /// Gives back the room of a file that left the area; releasing one not held is a no-op. The ledger sweep's release
    /// carries its <paramref name="fence"/> and is refused with <see cref="StaleFenceException"/> once stale.
    /// </summary>
    Task ReleaseAsync(string area, string name, SingletonFence? fence, CancellationToken cancellationToken);

    Task<IReadOnlyList<AreaUsage>> ListAreaUsageAsync(CancellationToken cancellationToken);

    /// <summary>Reservations of an area made before <paramref name="before"/>, oldest first: for the sweep that drops those whose file is gone.</summary>
    Task<IReadOnlyList<AreaReservation>> ListReservationsAsync(string area, DateTimeOffset before, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Takes the mover of a dataset for <paramref name="holder"/> if fewer than <paramref name="limit"/> movers are
    /// held and nobody else holds this dataset's; a holder that has it already renews it. Expired leases count for nobody.
    /// </summary>
    Task<bool> TryAcquireMoverAsync(string dataset, string holder, int limit, DateTimeOffset now, TimeSpan lease, CancellationToken cancellationToken);

    /// <summary>Gives a dataset's mover back, if <paramref name="holder"/> holds it.</summary>
    Task ReleaseMoverAsync(string dataset, string holder, CancellationToken cancellationToken);

    /// <summary>Movers held right now (unexpired leases).</summary>
    Task<IReadOnlyList<MoverLease>> ListMoversAsync(DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Stores an operator's setting (a JSON value), replacing an earlier one with the same key.</summary>
    Task SetSettingAsync(FlowSetting setting, CancellationToken cancellationToken);

    /// <summary>Removes a setting, so the configured default applies again; true if there was one.</summary>
    Task<bool> RemoveSettingAsync(string key, CancellationToken cancellationToken);

    Task<IReadOnlyList<FlowSetting>> ListSettingsAsync(CancellationToken cancellationToken);
}

/// <summary>An area's bounds in bytes; a quota of 0 means unbounded (usage is still recorded).</summary>
public sealed record AreaLimits(long QuotaBytes, long HighWaterBytes, long LowWaterBytes)
{
    public static AreaLimits Unbounded { get; } = new(0, long.MaxValue, long.MaxValue);

    public bool Bounded => QuotaBytes > 0;
}

public sealed record AreaFile(string Name, long Bytes);

/// <summary>What an area holds according to its ledger, and the most it ever held.</summary>
public sealed record AreaUsage(string Area, long Bytes, long Files, bool Blocked, long PeakBytes, long LargestFileBytes);

public sealed record AreaReservation(string Area, string Name, long Bytes, DateTimeOffset At);

public sealed record MoverLease(string Dataset, string Holder, DateTimeOffset Since, DateTimeOffset Expires);

public sealed record FlowSetting(string Key, string Value, string By, DateTimeOffset At);

/// <summary>The admission rule every store applies inside its own atomic step.</summary>
public static class AreaLedger
{
    /// <summary>Whether an area with <paramref name="bytes"/> reserved is blocked now, given whether it was blocked before.</summary>
    public static bool Blocked(bool wasBlocked, long bytes, AreaLimits limits) =>
        limits.Bounded && (wasBlocked ? bytes > limits.LowWaterBytes : bytes >= limits.HighWaterBytes);
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class FlowStoreAccess
{
    extension(StoreBackend backend)
    {
        public IFlowStore Flow => backend.Get<IFlowStore>();
    }
}
