using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Merger;

/// <summary>Keeps the merger's ledger of each run's files from the sagas' reports (see <see cref="IRunLedger"/>).</summary>
public sealed class RunFileProgressConsumer(IRunLedger ledger) : IConsumer<RunFileProgress>
{
    public Task Consume(ConsumeContext<RunFileProgress> context) => ledger.RecordAsync(context.Message, context.CancellationToken);
}

/// <summary>
/// A queue of its own, not paused with the merger: the ledger keeps up while merging is paused, so that merging
/// resumes on what is true.
/// </summary>
public sealed class RunFileProgressConsumerDefinition() : QueueConsumerDefinition<RunFileProgressConsumer>(QueueName, [100, 500, 2000, 10000], outbox: false)
{
    public const string QueueName = "merger-ledger";
}
