using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace Pipeline.Production.Flow;

/// <summary>
/// Back-pressure towards the archive: byte quotas on the areas between stages, the number of archive writers
/// ("movers") across all archiver instances, and per-dataset merge ordering and archive copies. Operators can
/// change quotas, movers and ordering at run time through the admin API; those settings override these.
/// </summary>
public sealed class FlowOptions
{
    public const string Section = "Pipeline:Flow";

    /// <summary>Quotas by area name (cache, scratch, output); an area not listed is unbounded.</summary>
    public Dictionary<string, AreaQuotaOptions> Areas { get; set; } = [];

    /// <summary>Archive writers at once across every archiver instance: tape drives are few.</summary>
    [Range(1, 256)]
    public int Movers { get; set; } = 2;

    /// <summary>A mover's lease; renewed while it writes, so a dead archiver's mover is free again after this long.</summary>
    [Range(1, 3600)]
    public double MoverLeaseSeconds { get; set; } = 60;

    /// <summary>Per-dataset ordering and archive copies; a dataset not listed uses <see cref="DefaultOrdering"/> and one copy.</summary>
    public Dictionary<string, DatasetFlowOptions> Datasets { get; set; } = [];

    public MergeOrdering DefaultOrdering { get; set; } = MergeOrdering.Strict;

    /// <summary>Under strict ordering, outputs that waited this long for earlier runs raise an alert (and keep waiting).</summary>
    [Range(1, 30 * 24 * 3600)]
    public double StrictWaitSeconds { get; set; } = 1800;

    /// <summary>
    /// The disk under a bounded area must keep this much free after a file is admitted: a stage whose disk is fuller
    /// than that (whatever the quota says, since other tenants share disks) waits as it would for a full area.
    /// 0 turns the check off.
    /// </summary>
    [Range(0, long.MaxValue)]
    public long MinFreeBytes { get; set; } = 64L << 20;

    /// <summary>How often a stage held back by a full area asks again.</summary>
    [Range(0.01, 60)]
    public double AdmissionPollSeconds { get; set; } = 0.25;

    /// <summary>A reservation whose file is gone from its area after this long is dropped by the ledger sweep.</summary>
    [Range(1, 30 * 24 * 3600)]
    public double StaleReservationSeconds { get; set; } = 3600;
}

public sealed class AreaQuotaOptions
{
    /// <summary>The most the area may hold, in bytes; 0 is unbounded.</summary>
    [Range(0, long.MaxValue)]
    public long QuotaBytes { get; set; }

    /// <summary>Above this fraction of the quota the stage that fills the area stops taking work...</summary>
    [Range(0.01, 1)]
    public double HighWater { get; set; } = 0.9;

    /// <summary>...and takes it again once the area is down to this fraction.</summary>
    [Range(0, 1)]
    public double LowWater { get; set; } = 0.7;

    /// <summary>Why these bounds are unusable, or null.</summary>
    public string? Problem() =>
        QuotaBytes < 0 ? "quotaBytes must not be negative"
        : HighWater is <= 0 or > 1 ? "highWater must be a fraction in (0, 1]"
        : LowWater < 0 || LowWater > HighWater ? "lowWater must be a fraction no greater than highWater"
        : null;

    public State.AreaLimits ToLimits() => QuotaBytes <= 0
        ? State.AreaLimits.Unbounded
        : new(QuotaBytes, (long)(QuotaBytes * HighWater), (long)(QuotaBytes * LowWater));
}

public sealed class DatasetFlowOptions
{
    public MergeOrdering? Ordering { get; set; }

    /// <summary>Archive areas that each hold a copy of the dataset's merged files; empty means the one "archive".</summary>
    public List<string> Copies { get; set; } = [];
}

[JsonConverter(typeof(JsonStringEnumConverter<MergeOrdering>))]
public enum MergeOrdering
{
    /// <summary>A merged file holds only runs whose every file is past reconstruction: no late file can sort before it.</summary>
    Strict,

    /// <summary>Merges whatever outputs are ready: faster, but a late file lands after later runs.</summary>
    Relaxed,
}
