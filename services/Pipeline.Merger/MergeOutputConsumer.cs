using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Merger;

/// <summary>
/// Puts one output into its dataset's durable buffer. An output that was merged already (a repeat
/// from the saga's watchdog) gets its merge, and archive if done, reported again instead.
/// </summary>
public sealed class MergeOutputConsumer(IMergeStore merges, TimeProvider time) : IConsumer<MergeOutput>
{
    public async Task Consume(ConsumeContext<MergeOutput> context)
    {
        var message = context.Message;
        var output = message.Output;
        var stored = await merges.AddOutputAsync(new PendingOutput(
            output.OutputId, message.FileId, message.Campaign, output.Dataset, output.Run, message.Stream, output.Section,
            message.RawName, output.Name, output.Size, output.Adler32, output.Events, time.GetUtcNow(), null, message.RawAdler32), context.CancellationToken);
        if (stored.MergedName is null)
        {
            return;
        }
        await context.PublishBoundedAsync(new OutputsMerged(message.FileId, message.Run, message.Stream, message.Campaign, stored.MergedName, [stored.OutputId]));
        var merged = await merges.GetMergedFileAsync(stored.MergedName, context.CancellationToken);
        if (merged is { Archived: true })
        {
            await context.PublishBoundedAsync(new OutputsArchived(message.FileId, message.Run, message.Stream, message.Campaign, stored.MergedName, [stored.OutputId]));
        }
    }
}

public sealed class MergeOutputConsumerDefinition() : QueueConsumerDefinition<MergeOutputConsumer>(QueueName, [100, 500, 2000, 10000])
{
    public const string QueueName = "merger";
}
