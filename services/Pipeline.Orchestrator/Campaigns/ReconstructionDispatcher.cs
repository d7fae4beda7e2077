using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator.Campaigns;

/// <summary>
/// Shares the reconstruction slots between campaigns by their priorities. Staged files wait in the store,
/// not in the broker; the dispatcher keeps about <see cref="OrchestratorOptions.InFlightPerSlot"/> requests
/// per live slot (<see cref="LiveSlots"/>, from the workers' heartbeats) in flight and fills each free place from the campaign that is furthest behind its share
/// (stride scheduling: every dispatch moves a campaign's pass on by 1 / priority, the lowest pass goes next).
/// Over any stretch in which several campaigns have staged files, each gets slots in proportion to its
/// priority; a campaign with nothing staged takes no turn, so its share goes to the others.
/// </summary>
public sealed class ReconstructionDispatcher(
    IFileSagaStore store,
    LiveSlots slots,
    CampaignDirectory campaigns,
    DispatchSignal signal,
    PauseState pause,
    IBus bus,
    IOptions<OrchestratorOptions> options,
    SingletonLeases singletons,
    TimeProvider time,
    ILogger<ReconstructionDispatcher> logger) : PeriodicWork(time, logger)
{
    protected override ISingletonGate Singleton { get; } = singletons.For(Singletons.Dispatcher);

    public static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    /// <summary>A dispatch whose file still shows as staged after this long is taken as lost and may be made again.</summary>
    public static readonly TimeSpan PendingLifetime = TimeSpan.FromSeconds(10);

    private readonly Dictionary<string, double> _pass = new(StringComparer.Ordinal);

    // Dispatched, and not yet seen leaving the staged state in the store: these count as in flight beside the
    // store's count. Only the committed saga says it has left: a saga's action runs before its write commits, and
    // the write may still lose a race and be retried, so a word from inside the state machine would count the file
    // neither here nor among those holding a slot for a moment, and one dispatch too many would follow.
    private readonly HashSet<Guid> _pending = [];

    // Dispatched lately: never dispatched again until the dispatch is taken as lost (a file still shows as staged
    // for a moment after its saga took the dispatch, until the saga's change is committed).
    private readonly Dictionary<Guid, DateTimeOffset> _recent = [];

    /// <summary>Requests made so far, per campaign (what the fair-share split is measured on).</summary>
    public IReadOnlyDictionary<string, long> Dispatched => _dispatched;

    private readonly Dictionary<string, long> _dispatched = new(StringComparer.Ordinal);

    protected override TimeSpan Interval => Tick;

    protected override string What => "Dispatching reconstruction";

    protected override async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        while (await DispatchAsync(stoppingToken) > 0)
        {
            // Keep going while there is room: a pass is bounded by what one listing returns.
        }
    }

    // A file newly staged, or a slot freed, wakes the dispatcher before the tick.
    protected override Task PauseAsync(TimeSpan delay, CancellationToken stoppingToken) => signal.WaitAsync(delay, Time, stoppingToken);

    /// <summary>One pass: fills the free places in flight by the campaigns' shares. Returns how many were dispatched.</summary>
    public async Task<int> DispatchAsync(CancellationToken cancellationToken)
    {
        var now = Time.GetUtcNow();
        foreach (var id in _pending.ToList())
        {
            // Read before the counts: a file seen gone from the staged state here is among those counted below.
            if ((await store.LoadAsync(id, cancellationToken))?.CurrentState != FileStates.Staged)
            {
                _pending.Remove(id);
            }
        }
        foreach (var expired in _recent.Where(p => now - p.Value > PendingLifetime).Select(p => p.Key).ToList())
        {
            _recent.Remove(expired);
            _pending.Remove(expired);
        }
        var counts = await store.CountByStateAsync(cancellationToken);
        var holding = counts.Where(c => FileStates.HoldingSlot.Contains(c.State)).Sum(c => c.Files);
        var staged = counts.Where(c => c.State == FileStates.Staged && c.Files > 0).ToDictionary(c => c.Campaign, c => c.Files, StringComparer.Ordinal);
        var free = Math.Max(options.Value.MinimumInFlight, slots.Count * options.Value.InFlightPerSlot) - holding - _pending.Count;
        if (free <= 0 || staged.Count == 0)
        {
            Logger.LogDebug("Nothing to dispatch: {Free} free places, {Staged} campaigns with staged files", free, staged.Count);
            return 0;
        }

        var eligible = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var name in staged.Keys)
        {
            var campaign = await campaigns.GetAsync(name, cancellationToken);
            if (campaign is not null && !campaign.Cancelled && !pause.IsCampaignPaused(name))
            {
                eligible[name] = campaign.Definition.EffectivePriority;
            }
        }
        if (eligible.Count == 0)
        {
            return 0;
        }
        // A campaign that had nothing staged comes back level with the others, not with credit for the time it was idle.
        var floor = eligible.Keys.Where(_pass.ContainsKey).Select(c => _pass[c]).DefaultIfEmpty(0).Min();
        foreach (var name in eligible.Keys)
        {
            _pass[name] = Math.Max(_pass.GetValueOrDefault(name, floor), floor);
        }

        var queues = new Dictionary<string, Queue<FileSummary>>(StringComparer.Ordinal);
        var dispatched = 0;
        while (dispatched < free && eligible.Count > 0)
        {
            var next = eligible.Keys.OrderBy(c => _pass[c]).ThenByDescending(c => eligible[c]).ThenBy(c => c, StringComparer.Ordinal).First();
            if (!queues.TryGetValue(next, out var queue))
            {
                var page = await store.ListAsync(new FileQuery(Campaign: next, State: FileStates.Staged, Limit: (int)Math.Min(1000, free + _recent.Count)), cancellationToken);
                queues[next] = queue = new Queue<FileSummary>(page.Files.Where(f => !_recent.ContainsKey(f.Id)));
            }
            if (!queue.TryDequeue(out var file))
            {
                eligible.Remove(next);
                continue;
            }
            // The lease ran out during the pass (the store was slow to renew it): another instance may dispatch now.
            if (Singleton.Token is not { } fence)
            {
                Logger.LogWarning("Dispatching stopped: this instance no longer holds the {Singleton} lease", Singleton.Name);
                break;
            }
            await bus.PublishBoundedAsync(new DispatchReconstruction(file.Id, file.Run, file.Stream, file.Campaign, fence), cancellationToken);
            _pending.Add(file.Id);
            _recent[file.Id] = now;
            _pass[next] += 1.0 / eligible[next];
            _dispatched[next] = _dispatched.GetValueOrDefault(next) + 1;
            dispatched++;
        }
        Logger.LogDebug("Dispatched {Dispatched} of {Free} free places ({Holding} holding, {Pending} pending)", dispatched, free, holding, _pending.Count);
        return dispatched;
    }
}
