using System.ComponentModel.DataAnnotations;

namespace Pipeline.Orchestrator;

/// <summary>How long each step may go without progress before the watchdog re-issues it.</summary>
public sealed class OrchestratorOptions
{
    public const string Section = "Pipeline:Orchestrator";

    /// <summary>From stage-in requested to staged (includes waiting in the stage-in queue).</summary>
    [Range(1, int.MaxValue)]
    public int StagingTimeoutSeconds { get; set; } = 2 * 3600;

    /// <summary>From staged to a worker claiming the job (includes waiting in the reconstruction queue).</summary>
    [Range(1, int.MaxValue)]
    public int QueuedTimeoutSeconds { get; set; } = 12 * 3600;

    /// <summary>A worker's claim lasts this long unless renewed; a job whose lease runs out is given to another worker.</summary>
    [Range(5, 24 * 3600)]
    public int LeaseSeconds { get; set; } = 120;

    /// <summary>From reconstructed to all outputs archived.</summary>
    [Range(1, int.MaxValue)]
    public int MergeTimeoutSeconds { get; set; } = 2 * 3600;

    /// <summary>After this many re-issues without progress a file is failed rather than retried forever.</summary>
    [Range(1, 1000)]
    public int MaxStalls { get; set; } = 10;

    /// <summary>
    /// A file whose last this-many failures share one signature is failed as quarantined rather than retried until
    /// its budget is spent: a job that hits its time limit, or a corrupt source, fails the same way every time.
    /// 0 turns this off.
    /// </summary>
    [Range(0, 1000)]
    public int QuarantineAfterRepeats { get; set; } = 2;

    /// <summary>
    /// How long past its lease a batch job's file waits for another worker to adopt the job (a restarted or surviving
    /// worker finds it in the batch system) before it is given a new attempt.
    /// </summary>
    [Range(0, 24 * 3600)]
    public int BatchAdoptionSeconds { get; set; } = 300;

    public const int DefaultFreeSiteFailures = 20;

    /// <summary>
    /// Failures the site causes (batch nodes lost, jobs preempted or cancelled by the site) that a file may have
    /// without spending its attempts; past these they count as any failure.
    /// </summary>
    [Range(0, 1000)]
    public int FreeSiteFailures { get; set; } = DefaultFreeSiteFailures;

    [Range(1, 3600)]
    public int WatchdogIntervalSeconds { get; set; } = 10;

    /// <summary>A file waiting for its calibration is looked at again this often, besides when a calibration is announced.</summary>
    [Range(1, 24 * 3600)]
    public int CalibrationCheckSeconds { get; set; } = 60;

    /// <summary>
    /// Reconstruction requests in the queue or running, per reconstruction slot the live workers report: enough
    /// that a worker finishing a job finds the next one waiting, few enough that a campaign's share takes effect at once.
    /// </summary>
    [Range(1, 100)]
    public int InFlightPerSlot { get; set; } = 2;

    /// <summary>The least that may be in flight (before the first worker has reported its slots).</summary>
    [Range(1, 100_000)]
    public int MinimumInFlight { get; set; } = 4;

    /// <summary>A reprocessing or Monte Carlo campaign has at most this many files registered but not yet reconstructed.</summary>
    [Range(1, 1_000_000)]
    public int FeedWindowFiles { get; set; } = 500;

    /// <summary>Files registered by the feeder in one go.</summary>
    [Range(1, 100_000)]
    public int FeedBatchFiles { get; set; } = 100;

    [Range(0.05, 3600)]
    public double FeedIntervalSeconds { get; set; } = 1;

    /// <summary>
    /// Re-issue every in-flight step not touched since this process started. Right for the in-memory
    /// transport, which loses its messages with the process; wrong for a broker, which keeps them.
    /// Defaults to on for the in-memory transport.
    /// </summary>
    public bool? RecoverInFlightOnStart { get; set; }
}
