using MassTransit;
using Pipeline.Contracts;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// What the state machine needs to know of the world when a message reaches a file, looked up before the event is
/// raised and handed over with the message (a payload added by <see cref="FileFactsFilter{T}"/>), so that the machine
/// itself reads nothing and takes no service.
/// </summary>
/// <param name="CampaignPaused">
/// An operator paused the file's campaign (as this process read it, or as the worker that took its job out of the batch
/// queue for the pause reports it): the step is held, not issued.
/// </param>
/// <param name="FromCurrentDispatcher">
/// For a dispatch: it was sent under the dispatcher lease's current token (or carries none). One sent by a dispatcher
/// deposed since would break the global bound and the campaigns' shares.
/// </param>
/// <param name="TimeLimitSeconds">
/// The time limit a reconstruction of the file's campaign gets now: the campaign's measured run times against its
/// release's own limit (<see cref="WallTime"/>). A file retried after a time-out, or given a limit by an operator, keeps its own.
/// </param>
public sealed record FileFacts(bool CampaignPaused, bool FromCurrentDispatcher, int TimeLimitSeconds);

/// <summary>Looks up the <see cref="FileFacts"/> of each message the file sagas consume.</summary>
public sealed class FileFactsFilter<T>(PauseState pause, ISingletonLeaseStore singletons, CampaignDirectory campaigns, CampaignWallTimes wallTimes)
    : IFilter<ConsumeContext<T>>
    where T : class
{
    public async Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        if (context.Message is IFileMessage file)
        {
            var current = context.Message is not DispatchReconstruction { Fence: { } fence }
                || (await singletons.GetAsync(Singletons.Dispatcher, context.CancellationToken))?.Token is not { } token
                || fence >= token;
            var release = (await campaigns.GetAsync(file.Campaign, context.CancellationToken))?.Definition.Release;
            var limit = await wallTimes.LimitAsync(file.Campaign, release?.EffectiveTimeoutSeconds ?? ReleaseSpec.DefaultTimeoutSeconds, context.CancellationToken);
            var paused = pause.IsCampaignPaused(file.Campaign) || context.Message is ReconstructionFailed { CampaignPaused: true };
            context.GetOrAddPayload(() => new FileFacts(paused, current, limit.Seconds));
        }
        await next.Send(context);
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("fileFacts");
}
