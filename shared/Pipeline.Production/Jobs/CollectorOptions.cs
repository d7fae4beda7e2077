using System.ComponentModel.DataAnnotations;

namespace Pipeline.Production.Jobs;

/// <summary>
/// The sweeps of what killed or superseded jobs leave behind: job folders in a worker's scratch (swept by the
/// reconstruction service on each worker's host, since scratch is that host's alone) and outputs in the unmerged area
/// (swept by the collector).
/// </summary>
public sealed class CollectorOptions
{
    public const string Section = "Pipeline:Collector";

    /// <summary>How often scratch and the unmerged area are searched for what nothing will come back for.</summary>
    [Range(0.1, 86_400)]
    public double LeftoverSweepSeconds { get; set; } = 300;

    /// <summary>A job folder or output of a finished file is left alone until nothing in it has been written for this long.</summary>
    [Range(0, 30 * 86_400)]
    public double LeftoverAfterSeconds { get; set; } = 600;
}
