using System.Diagnostics.Metrics;

namespace Pipeline.Infrastructure.Telemetry;

/// <summary>
/// What each stage did, for Prometheus (/metrics) and any OpenTelemetry back end: files and bytes per stage,
/// failures per stage and signature, how long each step took, and how many workers and tape writers are busy.
/// </summary>
public sealed class PipelineMetrics
{
    public const string MeterName = "Pipeline";

    public const string Staging = "staging";
    public const string Reconstruction = "reconstruction";
    public const string Collection = "collection";
    public const string Merge = "merge";
    public const string Archive = "archive";

    private readonly Counter<long> _files;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _failures;
    private readonly Histogram<double> _duration;
    private readonly UpDownCounter<long> _busy;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _busyNow = new(StringComparer.Ordinal);
    private readonly Lock _filesGate = new();
    private IReadOnlyList<FileCount> _fileCounts = [];
    private IReadOnlyDictionary<string, long> _queueDepths = new Dictionary<string, long>();
    private IReadOnlyList<AreaFill> _areas = [];
    private IReadOnlyList<StageBacklog> _backlog = [];
    private readonly Counter<long> _tapeMounts;

    public PipelineMetrics(IMeterFactory meters)
    {
        var meter = meters.Create(MeterName);
        _files = meter.CreateCounter<long>("pipeline.stage.files", "{file}", "Files a stage finished successfully");
        _bytes = meter.CreateCounter<long>("pipeline.stage.bytes", "By", "Bytes a stage moved or produced");
        _failures = meter.CreateCounter<long>("pipeline.stage.failures", "{failure}", "Failed attempts of a stage");
        _duration = meter.CreateHistogram<double>("pipeline.stage.duration", "s", "How long one step of a stage took",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 12 * 3600] });
        _busy = meter.CreateUpDownCounter<long>("pipeline.stage.busy", "{slot}", "Reconstruction slots and archive writers in use");
        meter.CreateObservableGauge("pipeline.files", ObserveFiles, "{file}", "Raw files per campaign and state, as the state store last counted them");
        _tapeMounts = meter.CreateCounter<long>("pipeline.tape.mounts", "{mount}", "Volumes mounted by the simulated tape library");
        meter.CreateObservableGauge("pipeline.area.bytes", () => Volatile.Read(ref _areas).Select(a =>
            new Measurement<long>(a.Bytes, new KeyValuePair<string, object?>("area", a.Area))), "By", "Bytes each bounded area holds, as its ledger last read");
        meter.CreateObservableGauge("pipeline.area.blocked", () => Volatile.Read(ref _areas).Select(a =>
            new Measurement<int>(a.Blocked ? 1 : 0, new KeyValuePair<string, object?>("area", a.Area))), null, "1 while an area is above its high-water mark and its filling stage waits");
        meter.CreateObservableGauge("pipeline.backlog", () => Volatile.Read(ref _backlog).Select(b => new Measurement<long>(b.Files,
                new KeyValuePair<string, object?>("stage", b.Stage), new KeyValuePair<string, object?>("campaign", b.Campaign))),
            "{file}", "Work waiting for a scalable stage or in its hands, per campaign, as the state store last counted it: what autoscaling reads");
        meter.CreateObservableGauge("pipeline.queue.depth", ObserveQueues, "{message}", "Messages ready in each service queue and its error queue, as the health watcher last read them");

        // Every stage's series exist from start-up at 0, so that a rate or an alert on them reads 0 before the first
        // file, not "absent". (A histogram has no series until its first step: there is no 0 to record.)
        foreach (var stage in Stages)
        {
            var tag = new KeyValuePair<string, object?>("stage", stage);
            _files.Add(0, tag);
            _bytes.Add(0, tag);
            _failures.Add(0, tag);
        }
        foreach (var stage in new[] { Reconstruction, Archive })
        {
            _busy.Add(0, new KeyValuePair<string, object?>("stage", stage));
        }
    }

    /// <summary>The stages whose work is counted, in the order a file meets them.</summary>
    public static readonly IReadOnlyList<string> Stages = [Staging, Reconstruction, Collection, Merge, Archive];

    public void Completed(string stage, long bytes, TimeSpan took)
    {
        var tag = new KeyValuePair<string, object?>("stage", stage);
        _files.Add(1, tag);
        _bytes.Add(bytes, tag);
        _duration.Record(took.TotalSeconds, tag);
    }

    public void Failed(string stage, string reason) =>
        _failures.Add(1, new KeyValuePair<string, object?>("stage", stage), new KeyValuePair<string, object?>("reason", ReasonClass(reason)));

    /// <summary>Marks one slot of a stage busy until the returned handle is disposed.</summary>
    public IDisposable Busy(string stage)
    {
        var tag = new KeyValuePair<string, object?>("stage", stage);
        _busy.Add(1, tag);
        _busyNow.AddOrUpdate(stage, 1, (_, n) => n + 1);
        return new Release(() =>
        {
            _busy.Add(-1, tag);
            _busyNow.AddOrUpdate(stage, 0, (_, n) => n - 1);
        });
    }

    /// <summary>Slots of a stage in use in this process right now.</summary>
    public int BusyNow(string stage) => _busyNow.GetValueOrDefault(stage);

    /// <summary>The latest count of files per campaign and state (the API's file counter reads the store).</summary>
    public void SetFileCounts(IReadOnlyList<FileCount> counts)
    {
        lock (_filesGate)
        {
            _fileCounts = counts;
        }
    }

    public void TapeMounted(string library) => _tapeMounts.Add(1, new KeyValuePair<string, object?>("library", library));

    /// <summary>A tape library this process drives: its mount count exists from now on, at 0 until the first mount.</summary>
    public void TapeLibrary(string library) => _tapeMounts.Add(0, new KeyValuePair<string, object?>("library", library));

    /// <summary>The latest backlog of each scalable stage and campaign (the API's file counter reads the store).</summary>
    public void SetBacklog(IReadOnlyList<StageBacklog> backlog) => Volatile.Write(ref _backlog, backlog);

    /// <summary>The latest usage of the bounded areas (the flow-control refresher reads the ledger).</summary>
    public void SetAreaUsage(IReadOnlyList<AreaFill> areas) => Volatile.Write(ref _areas, areas);

    /// <summary>The latest depth of each queue (the health watcher reads them from the broker).</summary>
    public void SetQueueDepths(IReadOnlyDictionary<string, long> depths) => Volatile.Write(ref _queueDepths, depths);

    private IEnumerable<Measurement<long>> ObserveQueues() =>
        Volatile.Read(ref _queueDepths).Select(q => new Measurement<long>(q.Value, new KeyValuePair<string, object?>("queue", q.Key)));

    private IEnumerable<Measurement<long>> ObserveFiles()
    {
        IReadOnlyList<FileCount> counts;
        lock (_filesGate)
        {
            counts = _fileCounts;
        }
        return counts.Select(c => new Measurement<long>(c.Files,
            new KeyValuePair<string, object?>("campaign", c.Campaign), new KeyValuePair<string, object?>("state", c.State)));
    }

    /// <summary>A coarse, bounded class of a failure reason for a label (the signature, with its detail, is in the API).</summary>
    private static string ReasonClass(string reason)
    {
        var words = reason.Split([' ', ':'], 3, StringSplitOptions.RemoveEmptyEntries);
        return words.Length switch
        {
            0 => "unknown",
            1 => words[0].ToLowerInvariant(),
            _ => $"{words[0]} {words[1]}".ToLowerInvariant(),
        };
    }

    private sealed class Release(Action release) : IDisposable
    {
        private Action? _release = release;

        public void Dispose() => Interlocked.Exchange(ref _release, null)?.Invoke();
    }
}

/// <summary>A stage's fixed number of slots in this process (reconstruction slots, archive writers), for heartbeats.</summary>
public sealed record StageCapacity(string Stage, int Capacity);

/// <summary>How many files of a campaign are in a state, as the file counter last read it.</summary>
public sealed record FileCount(string Campaign, string State, long Files);

/// <summary>
/// The work a scalable stage has waiting or in hand for one campaign: raw files for staging, reconstruction and
/// merging, merged files for the archive.
/// </summary>
public sealed record StageBacklog(string Stage, string Campaign, long Files);

/// <summary>What a bounded area holds and whether its filling stage waits, as its ledger last said.</summary>
public sealed record AreaFill(string Area, long Bytes, bool Blocked);
