using System.ComponentModel.DataAnnotations;

namespace Pipeline.Monitor;

/// <summary>Settings under "Pipeline:Monitor".</summary>
public sealed class MonitorOptions
{
    public const string Section = "Pipeline:Monitor";

    /// <summary>How often the watcher looks at everything.</summary>
    [Range(0.1, 3600)]
    public double CheckIntervalSeconds { get; set; } = 30;

    /// <summary>An instance with no heartbeat for this long is reported silent (a few heartbeat intervals).</summary>
    [Range(0.1, 86_400)]
    public double SilentAfterSeconds { get; set; } = 60;

    /// <summary>An instance silent for this long is forgotten (scaled down or replaced), and its alert resolved.</summary>
    [Range(60, 30 * 86_400)]
    public double ForgetAfterSeconds { get; set; } = 24 * 3600;

    /// <summary>A storage area with less free space than this is low.</summary>
    [Range(0, long.MaxValue)]
    public long MinFreeBytes { get; set; } = 10L << 30;

    /// <summary>... or with less than this share of its file system free.</summary>
    [Range(0, 100)]
    public double MinFreePercent { get; set; } = 5;

    /// <summary>A file still past its step's deadline this long after it (the watchdog should have moved it) is stuck.</summary>
    [Range(0, 7 * 86_400)]
    public double StuckAfterSeconds { get; set; } = 600;

    /// <summary>
    /// A temporary file (a write in progress, "name.part-…") not written to for this long belongs to a write that died
    /// with its process: it is deleted. A live write touches its file with every buffer it writes.
    /// </summary>
    [Range(1, 7 * 86_400)]
    public double AbandonedTemporarySeconds { get; set; } = 600;

    /// <summary>How often the storage areas are searched for abandoned temporary files.</summary>
    [Range(0.1, 86_400)]
    public double TemporarySweepSeconds { get; set; } = 60;

    /// <summary>
    /// How often areas on storage servers are swept too: a sweep lists the whole area (PROPFIND, xrdfs ls), which for
    /// a large remote archive is a load on its server, so they are swept less often than folders.
    /// </summary>
    [Range(1, 7 * 86_400)]
    public double RemoteTemporarySweepSeconds { get; set; } = 3600;

    /// <summary>Queues whose error queues ("&lt;queue&gt;_error") are watched, on RabbitMQ.</summary>
    public List<string> Queues { get; set; } = ["run-events", "orchestrator", "stager", "discard-staged-file", "reconstruction", "collector", "merger", "merger-ledger", "merger-archived", "merger-remake", "merger-resend", "archiver", "monitor-alerts",
        "calibration-registered", "resend-run-file-progress", "file-states-query", "overdue-files-query", "run-times"];

    /// <summary>URLs that receive every alert raised and resolved, as a JSON POST.</summary>
    public List<string> Webhooks { get; set; } = [];
}
