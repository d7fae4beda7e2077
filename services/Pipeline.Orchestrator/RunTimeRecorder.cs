using MassTransit;
using Pipeline.Contracts;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Records how long every reconstruction ran, into its campaign's run-time histogram: a batch of reports at a time,
/// one increment per campaign and bucket, so the store sees one small write per batch, not one per file.
/// </summary>
public sealed class RunTimeRecorder(IRunTimeStore runTimes) : IConsumer<Batch<FileReconstructed>>
{
    public async Task Consume(ConsumeContext<Batch<FileReconstructed>> context)
    {
        foreach (var campaign in context.Message.GroupBy(m => m.Message.Campaign, StringComparer.Ordinal))
        {
            var buckets = campaign.GroupBy(m => RunTimeHistogram.BucketOf(m.Message.Seconds)).ToDictionary(b => b.Key, b => (long)b.Count());
            await runTimes.AddAsync(campaign.Key, buckets, context.CancellationToken);
        }
    }
}

public sealed class RunTimeRecorderDefinition : ConsumerDefinition<RunTimeRecorder>
{
    public const string QueueName = "run-times";
    private const int BatchFiles = 200;

    public RunTimeRecorderDefinition() => EndpointName = QueueName;

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<RunTimeRecorder> consumerConfigurator, IRegistrationContext context)
    {
        consumerConfigurator.Options<BatchOptions>(batch => batch.SetMessageLimit(BatchFiles).SetTimeLimit(TimeSpan.FromSeconds(1)).SetConcurrencyLimit(1));
        // A batch can hold only what the broker hands over at once.
        endpointConfigurator.PrefetchCount = BatchFiles;
        endpointConfigurator.UseMessageRetry(r => r.Intervals(1000, 5000, 15000));
    }
}
