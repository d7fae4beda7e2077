using MassTransit;
using Microsoft.Extensions.Logging;
using Pipeline.Production.State;

namespace Pipeline.Production.Control;

/// <summary>
/// Which stages are paused, as this process last read them from the store (every instance reads the same
/// store, so a pause reaches every instance of the stage within <see cref="RefreshInterval"/>).
/// </summary>
public sealed class PauseState
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);

    /// <summary>The stages that can be paused: the worker stages, by their queue names.</summary>
    public static readonly IReadOnlyList<string> Stages = ["stager", "reconstruction", "collector", "merger", "archiver"];

    private volatile IReadOnlySet<string> _paused = new HashSet<string>(StringComparer.Ordinal);
    private int _holding;

    public bool IsPaused(string stage) => _paused.Contains(stage);

    /// <summary>Everything paused right now (stages by queue name, campaigns by <see cref="CampaignTarget"/>); never changes once read.</summary>
    public IReadOnlySet<string> Paused => _paused;

    /// <summary>The pause target of a campaign (stages are paused by their queue names).</summary>
    public static string CampaignTarget(string campaign) => CampaignPrefix + campaign;

    /// <summary>The campaign a pause target names, or null for a stage.</summary>
    public static string? CampaignOf(string target) =>
        target.StartsWith(CampaignPrefix, StringComparison.Ordinal) ? target[CampaignPrefix.Length..] : null;

    private const string CampaignPrefix = "campaign:";

    public bool IsCampaignPaused(string campaign) => _paused.Contains(CampaignTarget(campaign));

    /// <summary>Messages held back right now in this process, waiting for their stage to resume.</summary>
    public int Holding => Volatile.Read(ref _holding);

    internal void Set(IEnumerable<string> paused) => _paused = new HashSet<string>(paused, StringComparer.Ordinal);

    /// <summary>Returns once the stage is not paused: the delivery stays unacknowledged and durable in the broker meanwhile.</summary>
    public async Task WaitWhilePausedAsync(string stage, CancellationToken cancellationToken)
    {
        if (!IsPaused(stage))
        {
            return;
        }
        Interlocked.Increment(ref _holding);
        try
        {
            while (IsPaused(stage))
            {
                await Task.Delay(RefreshInterval, cancellationToken);
            }
        }
        finally
        {
            Interlocked.Decrement(ref _holding);
        }
    }
}

/// <summary>Reads the paused stages from the store into <see cref="PauseState"/>.</summary>
public sealed class PauseStateRefresher(IControlStore control, PauseState state, TimeProvider time, ILogger<PauseStateRefresher> logger)
    : StoreRefresher(PauseState.RefreshInterval, time, logger)
{
    protected override string What => "Reading the paused stages";

    protected override async Task RefreshAsync(CancellationToken cancellationToken) =>
        state.Set((await control.ListPausedAsync(cancellationToken)).Select(p => p.Stage));
}

/// <summary>Holds back every message of a paused stage's queue until the stage is resumed.</summary>
public sealed class PauseFilter<T>(PauseState state) : IFilter<ConsumeContext<T>>
    where T : class
{
    public async Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        var queue = context.ReceiveContext.InputAddress.AbsolutePath.TrimEnd('/').Split('/')[^1];
        await state.WaitWhilePausedAsync(queue, context.CancellationToken);
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("pause");
}
