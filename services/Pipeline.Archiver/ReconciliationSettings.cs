using System.ComponentModel.DataAnnotations;
using Pipeline.Production.Audit;

namespace Pipeline.Archiver;

/// <summary>The archiver's periodic reconciliation sweep, as configured.</summary>
public sealed class ReconciliationSettings
{
    public const string Section = "Pipeline:Reconciliation";

    /// <summary>Minutes between sweeps of the catalog against the archive areas; 0 turns the periodic sweep off.</summary>
    [Range(0, 525_600)]
    public double IntervalMinutes { get; set; } = 360;

    /// <summary>Re-read every archived byte and compare checksums (a full read of the archive) rather than sizes only.</summary>
    public bool VerifyChecksums { get; set; }

    /// <summary>How old a file the catalog lacks must be before it counts as dark (younger ones may be writes in flight).</summary>
    [Range(0, ReconciliationOptions.MaxDarkAfterMinutes)]
    public double DarkAfterMinutes { get; set; } = 60;

    public ReconciliationOptions ToOptions() => new(VerifyChecksums, TimeSpan.FromMinutes(DarkAfterMinutes));
}
