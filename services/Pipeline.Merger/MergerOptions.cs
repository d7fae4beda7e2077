using System.ComponentModel.DataAnnotations;

namespace Pipeline.Merger;

public sealed class MergerOptions
{
    public const string Section = "Pipeline:Merger";

    /// <summary>A dataset's buffer below the target size is merged anyway once no output arrived for this long (e.g. at run end).</summary>
    [Range(0.05, 7 * 24 * 3600)]
    public double FlushIdleSeconds { get; set; } = 60;

    /// <summary>
    /// Merge a dataset's buffer as soon as every run in it has ended (all its files reconstructed or
    /// failed) and no output arrived for this long — the grace lets the last outputs' messages land.
    /// </summary>
    [Range(0, 3600)]
    public double RunEndGraceSeconds { get; set; } = 0.5;

    /// <summary>No output waits in a buffer longer than this, however busy the dataset.</summary>
    [Range(0.05, 30 * 24 * 3600)]
    public double MaxWaitSeconds { get; set; } = 3600;

    /// <summary>Inputs opened at once by one merge (each holds a file handle and one event).</summary>
    [Range(2, 4096)]
    public int MaxInputsPerMerge { get; set; } = 256;

    [Range(0.05, 3600)]
    public double PollSeconds { get; set; } = 1;

    /// <summary>A merged file not archived after this long is sent to the archiver again.</summary>
    [Range(1, 7 * 24 * 3600)]
    public int RepublishAfterSeconds { get; set; } = 600;

    /// <summary>
    /// Under strict order, outputs that waited this long on a run the ledger still counts as open make the run's files
    /// report again (a report lost in a crash would otherwise hold the dataset for ever); asked again at this interval.
    /// </summary>
    [Range(1, 24 * 3600)]
    public double LedgerResendSeconds { get; set; } = 60;
}
