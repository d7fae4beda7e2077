using System.ComponentModel.DataAnnotations;

namespace Pipeline.Collector;

/// <summary>The collector's sweep of job folders that killed jobs left in scratch.</summary>
public sealed class CollectorOptions
{
    public const string Section = "Pipeline:Collector";

    /// <summary>How often scratch is searched for job folders that nothing will come back for.</summary>
    [Range(0.1, 86_400)]
    public double LeftoverSweepSeconds { get; set; } = 300;

    /// <summary>A job folder of a finished file is left alone until nothing in it has been written for this long.</summary>
    [Range(0, 30 * 86_400)]
    public double LeftoverAfterSeconds { get; set; } = 600;
}
