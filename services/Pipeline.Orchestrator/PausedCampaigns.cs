using MassTransit;
using Pipeline.Production.Control;

namespace Pipeline.Orchestrator;

/// <summary>
/// The campaigns paused when a message reached the file sagas: a fact handed to the state machine with the
/// message (a payload added by <see cref="PausedCampaignsFilter{T}"/>), so that the machine takes no service to ask.
/// </summary>
public sealed class PausedCampaigns(IReadOnlySet<string> paused)
{
    public bool Contains(string campaign) => paused.Contains(PauseState.CampaignTarget(campaign));
}

/// <summary>Adds what is paused right now to each message the file sagas consume.</summary>
public sealed class PausedCampaignsFilter<T>(PauseState pause) : IFilter<ConsumeContext<T>>
    where T : class
{
    public Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        context.GetOrAddPayload(() => new PausedCampaigns(pause.Paused));
        return next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("pausedCampaigns");
}
