using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Reconstruction;

/// <summary>
/// Hands a reconstruction request to this process's worker and acknowledges it: the job itself runs
/// under its lease, not under the delivery. A request that finds every slot busy for
/// <see cref="ReconstructionOptions.SlotWaitSeconds"/> goes back to the end of the queue, so no delivery is
/// held longer than that — far below the broker's consumer timeout — and idle workers elsewhere can take it.
/// </summary>
public sealed class ReconstructFileConsumer(ReconstructionWorker worker, ILogger<ReconstructFileConsumer> logger) : IConsumer<ReconstructFile>
{
    public async Task Consume(ConsumeContext<ReconstructFile> context)
    {
        var outcome = await worker.DispatchAsync(context.Message, context.CancellationToken);
        if (outcome == DispatchOutcome.NoFreeSlot)
        {
            logger.LogInformation("All slots busy: {FileId} attempt {Attempt} goes back to the queue", context.Message.FileId, context.Message.Attempt);
            await context.SendBoundedAsync(context.ReceiveContext.InputAddress, context.Message);
        }
    }
}

/// <summary>
/// No more requests than there are slots, so queued work stays available to other workers. A claim that cannot reach
/// the orchestrator is tried again; a job's own failures are reported, not retried here.
/// </summary>
public sealed class ReconstructFileConsumerDefinition(IOptions<ReconstructionOptions> options)
    : QueueConsumerDefinition<ReconstructFileConsumer>(QueueName, [1000, 5000], slots: options.Value.EffectiveSlots)
{
    public const string QueueName = "reconstruction";
}
