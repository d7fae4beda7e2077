using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Control;
using Pipeline.Production.Jobs;
using Pipeline.Production.State;

namespace Pipeline.Production.Flow;

/// <summary>
/// The flow-control settings in force in this process: the configured ones, overridden by what operators set
/// through the API (read from the store every <see cref="RefreshInterval"/>), and the areas' usage as last read.
/// </summary>
public sealed class FlowControl(IOptions<FlowOptions> options)
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>Setting keys: an area's quota, the movers, a dataset's ordering.</summary>
    public static string AreaKey(string area) => "area:" + area;

    public const string MoversKey = "movers";

    public static string OrderingKey(string dataset) => "ordering:" + dataset;

    private volatile Snapshot _current = Snapshot.From(options.Value, [], []);

    public FlowOptions Configured => options.Value;

    public AreaQuotaOptions QuotaOf(string area) =>
        _current.Areas.TryGetValue(area, out var quota) ? quota : new AreaQuotaOptions();

    public AreaLimits LimitsOf(string area) => QuotaOf(area).ToLimits();

    /// <summary>Every area with a quota, configured or set.</summary>
    public IReadOnlyDictionary<string, AreaQuotaOptions> Quotas => _current.Areas;

    public int MoversLimit => _current.Movers;

    /// <summary>
    /// How a dataset is merged: as an operator set it at run time, else as its campaign defines it, else as the
    /// deployment configures the dataset, else the default.
    /// </summary>
    public MergeOrdering OrderingOf(string dataset, MergeOrdering? campaignOrdering = null) =>
        _current.Orderings.TryGetValue(dataset, out var ordering) ? ordering
        : campaignOrdering
            ?? (options.Value.Datasets.TryGetValue(dataset, out var flow) && flow.Ordering is { } configured ? configured : options.Value.DefaultOrdering);

    /// <summary>
    /// The archive areas that must each hold a verified copy of the dataset's merged files: as its campaign
    /// defines them, else as the deployment configures the dataset, else the primary archive.
    /// </summary>
    public IReadOnlyList<string> CopiesOf(string dataset, IReadOnlyList<string>? campaignCopies = null) =>
        campaignCopies is { Count: > 0 } ? campaignCopies
        : options.Value.Datasets.TryGetValue(dataset, out var flow) && flow.Copies.Count > 0 ? flow.Copies : [StorageOptions.Archive];

    public IReadOnlyList<AreaUsage> Usage => _current.Usage;

    /// <summary>Whether the area's filling stage is held back right now, as of the last read of its ledger.</summary>
    public bool IsBlocked(string area) => _current.Usage.Any(u => u.Area == area && u.Blocked);

    public IReadOnlyList<FlowSetting> Settings => _current.Settings;

    public void Apply(IReadOnlyList<FlowSetting> settings, IReadOnlyList<AreaUsage> usage) =>
        _current = Snapshot.From(options.Value, settings, usage);

    private sealed record Snapshot(
        IReadOnlyDictionary<string, AreaQuotaOptions> Areas,
        int Movers,
        IReadOnlyDictionary<string, MergeOrdering> Orderings,
        IReadOnlyList<AreaUsage> Usage,
        IReadOnlyList<FlowSetting> Settings)
    {
        public static Snapshot From(FlowOptions configured, IReadOnlyList<FlowSetting> settings, IReadOnlyList<AreaUsage> usage)
        {
            var areas = new Dictionary<string, AreaQuotaOptions>(configured.Areas, StringComparer.Ordinal);
            var movers = configured.Movers;
            // Only what operators set at run time; configured orderings are looked up after the campaign's own.
            var orderings = new Dictionary<string, MergeOrdering>(StringComparer.Ordinal);
            foreach (var setting in settings)
            {
                // A setting that does not parse (written by a newer version, say) is ignored: the configured value stands.
                try
                {
                    if (setting.Key == MoversKey)
                    {
                        movers = JsonSerializer.Deserialize<int>(setting.Value, Json);
                    }
                    else if (setting.Key.StartsWith("area:", StringComparison.Ordinal)
                        && JsonSerializer.Deserialize<AreaQuotaOptions>(setting.Value, Json) is { } quota && quota.Problem() is null)
                    {
                        areas[setting.Key["area:".Length..]] = quota;
                    }
                    else if (setting.Key.StartsWith("ordering:", StringComparison.Ordinal))
                    {
                        orderings[setting.Key["ordering:".Length..]] = JsonSerializer.Deserialize<MergeOrdering>(setting.Value, Json);
                    }
                }
                catch (JsonException)
                {
                }
            }
            return new Snapshot(areas, Math.Max(1, movers), orderings, usage, settings);
        }
    }
}

/// <summary>Reads operators' settings and the areas' usage from the store into <see cref="FlowControl"/>.</summary>
public sealed class FlowControlRefresher(IFlowStore store, FlowControl flow, PipelineMetrics metrics, TimeProvider time, ILogger<FlowControlRefresher> logger)
    : StoreRefresher(FlowControl.RefreshInterval, time, logger)
{
    protected override string What => "Reading the flow-control settings";

    protected override async Task RefreshAsync(CancellationToken cancellationToken)
    {
        var usage = await store.ListAreaUsageAsync(cancellationToken);
        flow.Apply(await store.ListSettingsAsync(cancellationToken), usage);
        metrics.SetAreaUsage([.. usage.Select(area => new AreaFill(area.Area, area.Bytes, area.Blocked))]);
    }
}

/// <summary>
/// Admission into a bounded area. A stage asks before it writes a file into the area it fills, and waits while
/// the area is blocked (its message stays unacknowledged and durable in the broker meanwhile); whoever removes
/// the file gives its room back.
/// </summary>
public sealed class AreaGate(IFlowStore store, FlowControl flow, StorageAreas areas, TimeProvider time, ILogger<AreaGate> logger)
{
    private int _filesWaiting;

    private int _diskFull;

    /// <summary>
    /// Times a file of this process waited because the disk under its area was too full (an admission refused for
    /// lack of free space, or a write that ran out of it), since the process started.
    /// </summary>
    public int DiskFullWaits => Volatile.Read(ref _diskFull);

    /// <summary>A write into the area ran out of disk: its partial file is gone and the file will wait for room.</summary>
    public void NoteDiskFull() => Interlocked.Increment(ref _diskFull);

    /// <summary>Files of this process waiting for room right now.</summary>
    public int Waiting => Volatile.Read(ref _filesWaiting);

    /// <summary>Returns once the file has room in the area (at once if the area is not blocked).</summary>
    public async Task AdmitAsync(string area, string name, long bytes, CancellationToken cancellationToken)
    {
        var waiting = false;
        try
        {
            var waited = await Admission.WaitAsync(token => TryAdmitAsync(area, name, bytes, token), TimeSpan.FromSeconds(flow.Configured.AdmissionPollSeconds), time, () =>
            {
                waiting = true;
                Interlocked.Increment(ref _filesWaiting);
                logger.LogInformation("Area {Area} is above its high-water mark or its disk is full; {Name} waits for room", area, name);
            }, cancellationToken);
            if (waiting)
            {
                logger.LogInformation("{Name} admitted into {Area} after waiting {Seconds:F1}s", name, area, waited.TotalSeconds);
            }
        }
        finally
        {
            if (waiting)
            {
                Interlocked.Decrement(ref _filesWaiting);
            }
        }
    }

    public Task<bool> TryAdmitAsync(string area, string name, long bytes, CancellationToken cancellationToken)
    {
        if (!DiskHasRoom(area, bytes))
        {
            return Task.FromResult(false);
        }
        return store.TryReserveAsync(area, name, bytes, flow.LimitsOf(area), time.GetUtcNow(), cancellationToken);
    }

    /// <summary>Whether the disk under the area keeps <see cref="FlowOptions.MinFreeBytes"/> free once the file is written.</summary>
    private bool DiskHasRoom(string area, long bytes)
    {
        var reserve = flow.Configured.MinFreeBytes;
        if (reserve <= 0 || !areas.TryGet(area, out var storage) || storage is not LocalArea folder
            || DiskSpace.AvailableBytes(folder.RootPath) is not { } available
            || available - bytes >= reserve)
        {
            return true;
        }
        if (Interlocked.Increment(ref _diskFull) % 100 == 1)
        {
            logger.LogWarning("The disk under area {Area} has {Available} bytes free, less than {Bytes} bytes plus the {Reserve} bytes kept free: writes into it wait",
                area, available, bytes, reserve);
        }
        return false;
    }

    /// <summary>Replaces an estimate (a job's) by the files it became.</summary>
    public Task ReplaceAsync(string area, string name, IReadOnlyList<AreaFile> files, CancellationToken cancellationToken) =>
        store.ReplaceReservationAsync(area, name, files, time.GetUtcNow(), cancellationToken);

    /// <summary>Gives back the room of a file that was removed. A failure here is logged: the ledger sweep drops it later.</summary>
    public async Task ReleaseAsync(string area, string name)
    {
        try
        {
            await store.ReleaseAsync(area, name, null, CancellationToken.None);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Could not give back the room of {Name} in {Area}; the ledger sweep will", name, area);
        }
    }
}

/// <summary>
/// Drops reservations whose file left its area without giving its room back (a process killed between deleting
/// a file and releasing it): otherwise a bounded area would slowly fill with ghosts and stop the flow. Scratch is each
/// reconstruction host's own disk, which this host cannot see: a scratch reservation (an attempt's folder) is dropped
/// instead once its attempt is over, i.e. its file is final, has moved on to a later attempt, or is not known at all.
/// </summary>
public sealed class AreaLedgerSweeper(
    IFlowStore store, StorageAreas areas, IFileStates fileStates, IOptions<FlowOptions> options, Control.SingletonLeases singletons, TimeProvider time, ILogger<AreaLedgerSweeper> logger)
    : PeriodicWork(time, logger)
{
    /// <summary>How many reservations of an area one pass looks at.</summary>
    private const int ReservationsPerPass = 1000;

    protected override ISingletonGate Singleton { get; } = singletons.For(Control.Singletons.AreaLedgerSweep);

    protected override TimeSpan Interval => TimeSpan.FromMinutes(1);

    protected override string What => "The ledger sweep";

    protected override bool PassAtStart => false;

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => SweepAsync(stoppingToken);

    /// <summary>Returns how many reservations were dropped.</summary>
    public async Task<int> SweepAsync(CancellationToken cancellationToken)
    {
        var dropped = 0;
        var before = Time.GetUtcNow() - TimeSpan.FromSeconds(options.Value.StaleReservationSeconds);
        foreach (var usage in await store.ListAreaUsageAsync(cancellationToken))
        {
            var area = areas.All.FirstOrDefault(a => a.Name == usage.Area);
            if (area is null)
            {
                continue;
            }
            var reservations = await store.ListReservationsAsync(usage.Area, before, ReservationsPerPass, cancellationToken);
            var over = usage.Area == StorageOptions.Scratch ? await OverAttemptsAsync(reservations, cancellationToken) : null;
            foreach (var reservation in reservations)
            {
                // A reservation may stand for a job's output folder: a folder of its name holds it too.
                var held = over is not null ? !over.Contains(reservation.Name)
                    : area is LocalArea folder ? folder.Holds(reservation.Name)
                    : await area.ExistsAsync(reservation.Name, cancellationToken);
                if (!held)
                {
                    await store.ReleaseAsync(reservation.Area, reservation.Name, Singleton.Fence, cancellationToken);
                    Logger.LogWarning("Dropped the reservation of {Name} in {Area} ({Bytes} bytes): {Why}", reservation.Name, reservation.Area, reservation.Bytes,
                        over is null ? "the file is gone" : "its attempt is over");
                    dropped++;
                }
            }
        }
        return dropped;
    }

    /// <summary>The names among <paramref name="reservations"/> of attempt folders whose attempt is over; when the orchestrator does not answer, none.</summary>
    private async Task<HashSet<string>> OverAttemptsAsync(IReadOnlyList<AreaReservation> reservations, CancellationToken cancellationToken)
    {
        var attempts = new List<(string Name, Guid FileId, int Attempt)>();
        foreach (var reservation in reservations)
        {
            if (JobFolders.TryParse(reservation.Name, out var fileId, out var attempt))
            {
                attempts.Add((reservation.Name, fileId, attempt));
            }
        }
        if (attempts.Count == 0)
        {
            return [];
        }
        Dictionary<Guid, FileStatus> known;
        try
        {
            known = (await fileStates.FindAsync([.. attempts.Select(a => a.FileId).Distinct()], cancellationToken)).ToDictionary(file => file.FileId);
        }
        catch (Exception ex) when (ex is TimeoutException or MassTransit.RequestException)
        {
            Logger.LogWarning("The ledger sweep could not ask the orchestrator about {Count} scratch reservations ({Reason}); they are looked at again next pass", attempts.Count, ex.Message);
            return [];
        }
        return [.. attempts
            .Where(a => !known.TryGetValue(a.FileId, out var file) || file.Final || file.Attempt > a.Attempt)
            .Select(a => a.Name)];
    }
}
