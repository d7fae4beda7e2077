using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Control;
using Pipeline.Production.State;
using RabbitMQ.Client;
using RabbitMQ.Client.Exceptions;

namespace Pipeline.Monitor;

/// <summary>One thing found wrong: an alert that should be active now.</summary>
public sealed record Finding(string Key, string Kind, string Severity, string Message);

/// <summary>
/// The health watcher (CDF's fstatus): every few seconds it looks at the instances' heartbeats, the storage
/// areas' free space, files stuck past their deadline and, on RabbitMQ, the broker and the error queues.
/// What it finds wrong is raised as an alert once, kept fresh while it lasts, and resolved when it is gone.
/// </summary>
public sealed class HealthWatcher(
    IHealthStore health,
    IClientFactory clients,
    StorageAreas areas,
    AlertNotifier notifier,
    PipelineMetrics metrics,
    IOptions<MonitorOptions> options,
    IOptions<PipelineOptions> pipeline,
    SingletonLeases singletons,
    TimeProvider time,
    ILogger<HealthWatcher> logger) : PeriodicWork(time, logger)
{
    protected override ISingletonGate Singleton { get; } = singletons.For(Singletons.HealthWatch);

    private AlertRecord? _storeDown;
    private int _unansweredInARow;

    public const string InstanceSilent = "instance-silent";
    public const string DiskLow = "disk-low";
    public const string FilesStuck = "files-stuck";
    public const string ErrorQueue = "error-queue";
    public const string BrokerUnreachable = "broker-unreachable";
    public const string OrchestratorUnanswered = "orchestrator-unanswered";

    /// <summary>How long the orchestrator has to answer the stuck-file question.</summary>
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(10);

    // Files' states belong to the orchestrator: the monitor asks it, over the bus, which files are overdue.
    private readonly IRequestClient<OverdueFilesQuery> _overdue = clients.CreateRequestClient<OverdueFilesQuery>(RequestTimeout.After(s: (int)AnswerTimeout.TotalSeconds));

    /// <summary>The kinds this watcher raises, and so resolves when their condition is gone.</summary>
    private static readonly HashSet<string> Kinds = [InstanceSilent, DiskLow, FilesStuck, ErrorQueue, BrokerUnreachable, OrchestratorUnanswered];

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.CheckIntervalSeconds);

    protected override string What => "The health check";

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => CheckOnceAsync(stoppingToken);

    // The store itself may be what is down, so this alert cannot be stored: it goes to the log and the webhooks,
    // once when it starts and once when it ends.
    protected override async Task OnFailedAsync(Exception failure, CancellationToken stoppingToken)
    {
        if (_storeDown is null)
        {
            _storeDown = new AlertRecord("store-unreachable", "store-unreachable", "critical",
                $"The health watcher cannot use the state store: {failure.Message}", Time.GetUtcNow(), Time.GetUtcNow(), null);
            await notifier.NotifyAsync(AlertNotifier.Raised, _storeDown, stoppingToken);
        }
    }

    protected override async Task OnRecoveredAsync(int failures, CancellationToken stoppingToken)
    {
        if (_storeDown is { } down)
        {
            _storeDown = null;
            await notifier.NotifyAsync(AlertNotifier.Resolved, down with { ResolvedAt = Time.GetUtcNow() }, stoppingToken);
        }
    }

    public async Task CheckOnceAsync(CancellationToken cancellationToken)
    {
        var now = Time.GetUtcNow();
        var findings = new List<Finding>();
        findings.AddRange(await SilentInstancesAsync(now, cancellationToken));
        findings.AddRange(LowDisks());
        var (stuck, stuckKnown) = await StuckFilesAsync(now, cancellationToken);
        findings.AddRange(stuck);
        if (pipeline.Value.Transport == TransportKind.RabbitMq)
        {
            findings.AddRange(await BrokerAsync(cancellationToken));
        }

        foreach (var finding in findings)
        {
            if (await health.RaiseAlertAsync(finding.Key, finding.Kind, finding.Severity, finding.Message, now, cancellationToken))
            {
                await notifier.NotifyAsync(AlertNotifier.Raised, new AlertRecord(finding.Key, finding.Kind, finding.Severity, finding.Message, now, now, null), cancellationToken);
            }
        }
        var current = findings.Select(f => f.Key).ToHashSet(StringComparer.Ordinal);
        foreach (var alert in await health.ListAlertsAsync(activeOnly: true, limit: 10_000, cancellationToken))
        {
            // Unanswered is not answered "none": a stuck-file alert stays until the orchestrator says otherwise.
            var unknown = alert.Kind == FilesStuck && !stuckKnown;
            if (Kinds.Contains(alert.Kind) && !unknown && !current.Contains(alert.Key) && await health.ResolveAlertAsync(alert.Key, now, cancellationToken) is { } resolved)
            {
                await notifier.NotifyAsync(AlertNotifier.Resolved, resolved, cancellationToken);
            }
        }
    }

    private async Task<IEnumerable<Finding>> SilentInstancesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var silentSince = now.AddSeconds(-options.Value.SilentAfterSeconds);
        var forgottenSince = now.AddSeconds(-options.Value.ForgetAfterSeconds);
        return (await health.ListInstancesAsync(cancellationToken))
            .Where(i => i.LastSeenAt < silentSince && i.LastSeenAt >= forgottenSince)
            .Select(i => new Finding($"{InstanceSilent}:{i.Instance}", InstanceSilent, "critical",
                $"{i.Instance} ({i.Services}) on {i.Host} has sent no heartbeat since {i.LastSeenAt:u}"));
    }

    private IEnumerable<Finding> LowDisks()
    {
        // Folders on this host; a remote endpoint's space is its operators' to watch.
        foreach (var area in areas.All.OfType<LocalArea>())
        {
            Directory.CreateDirectory(area.RootPath);
            var drive = new DriveInfo(area.RootPath);
            var free = drive.AvailableFreeSpace;
            var percent = drive.TotalSize > 0 ? 100.0 * free / drive.TotalSize : 100;
            if (free < options.Value.MinFreeBytes || percent < options.Value.MinFreePercent)
            {
                yield return new Finding($"{DiskLow}:{area.Name}", DiskLow, "warning",
                    $"area {area.Name} has {free / (1 << 20):N0} MiB free ({percent:F1}%); the limits are {options.Value.MinFreeBytes / (1 << 20):N0} MiB and {options.Value.MinFreePercent}%");
            }
        }
    }

    private async Task<(IReadOnlyList<Finding> Findings, bool Known)> StuckFilesAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        const int limit = 100;
        IReadOnlyList<OverdueFile> stuck;
        try
        {
            stuck = (await _overdue.GetResponseBoundedAsync<OverdueFilesQuery, OverdueFilesAnswer>(new OverdueFilesQuery(now.AddSeconds(-options.Value.StuckAfterSeconds), limit), AnswerTimeout, cancellationToken)).Message.Files;
        }
        catch (Exception ex) when (ex is RequestTimeoutException or TimeoutException or RequestFaultException && !cancellationToken.IsCancellationRequested)
        {
            // Once may be an orchestrator still starting or restarting; twice in a row is worth an operator's look.
            if (++_unansweredInARow < 2)
            {
                return ([], false);
            }
            var why = ex is RequestTimeoutException or TimeoutException
                ? $"no answer within {AnswerTimeout.TotalSeconds:F0}s: no orchestrator consumes its queue, or it is overloaded"
                : $"it failed to answer: {ex.Message}";
            return ([new Finding(OrchestratorUnanswered, OrchestratorUnanswered, "critical", $"The orchestrator was asked which files are stuck and {why}")], false);
        }
        _unansweredInARow = 0;
        if (stuck.Count == 0)
        {
            return ([], true);
        }
        var examples = string.Join(", ", stuck.Take(3).Select(s => $"{s.FileId} ({s.State}, run {s.Run})"));
        return ([new Finding(FilesStuck, FilesStuck, "warning",
            $"{(stuck.Count == limit ? $"{limit} or more" : stuck.Count.ToString(System.Globalization.CultureInfo.InvariantCulture))} files are past their step's deadline by over {options.Value.StuckAfterSeconds:F0}s, e.g. {examples}")], true);
    }

    private async Task<IEnumerable<Finding>> BrokerAsync(CancellationToken cancellationToken)
    {
        var findings = new List<Finding>();
        IConnection connection;
        try
        {
            connection = await new ConnectionFactory { Uri = new Uri(pipeline.Value.RabbitMq.Uri), ClientProvidedName = "pipeline-monitor" }
                .CreateConnectionAsync(cancellationToken);
        }
        catch (BrokerUnreachableException ex)
        {
            findings.Add(new Finding(BrokerUnreachable, BrokerUnreachable, "critical", $"RabbitMQ does not answer: {ex.InnerException?.Message ?? ex.Message}"));
            return findings;
        }
        await using (connection)
        {
            var depths = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var queue in options.Value.Queues.SelectMany(q => new[] { q, q + "_error" }))
            {
                // A passive declare of a queue that does not exist closes the channel: one channel per question.
                await using var channel = await connection.CreateChannelAsync(cancellationToken: cancellationToken);
                try
                {
                    var declared = await channel.QueueDeclarePassiveAsync(queue, cancellationToken);
                    depths[queue] = declared.MessageCount;
                    if (queue.EndsWith("_error", StringComparison.Ordinal) && declared.MessageCount > 0)
                    {
                        findings.Add(new Finding($"{ErrorQueue}:{queue}", ErrorQueue, "warning",
                            $"{declared.MessageCount} messages wait in {queue}: each was refused by a service; the MT-Fault-Message header says why"));
                    }
                }
                catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 404)
                {
                    // No error queue yet: nothing ever failed there.
                }
            }
            metrics.SetQueueDepths(depths);
        }
        return findings;
    }
}
