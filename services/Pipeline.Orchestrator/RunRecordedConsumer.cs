using MassTransit;
using Pipeline.Contracts;
using Pipeline.Production.Ingest;

namespace Pipeline.Orchestrator;

/// <summary>
/// Takes run announcements from the data-acquisition system. An invalid or conflicting announcement
/// is not retried: it goes to the error queue with the reason, and nothing is registered.
/// </summary>
public sealed class RunRecordedConsumer(RunIngestion ingestion, ILogger<RunRecordedConsumer> logger) : IConsumer<RunRecorded>
{
    public async Task Consume(ConsumeContext<RunRecorded> context)
    {
        var result = await ingestion.IngestAsync(context.Message, context, context.CancellationToken);
        logger.LogInformation("Run {Run}: {Files} raw files {Outcome}; taken by {Campaigns}",
            result.Run, result.Files, result.AlreadyRegistered ? "already registered, registrations repeated" : "registered",
            result.Campaigns.Count == 0 ? "no prompt campaign" : string.Join(", ", result.Campaigns));
    }
}

public sealed class RunRecordedConsumerDefinition : ConsumerDefinition<RunRecordedConsumer>
{
    /// <summary>The queue (and the fanout exchange of the same name) that run announcements are published to.</summary>
    public const string QueueName = "run-events";

    public RunRecordedConsumerDefinition()
    {
        EndpointName = QueueName;
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<RunRecordedConsumer> consumerConfigurator, IRegistrationContext context)
    {
        // Plain JSON from any AMQP client (no MassTransit envelope, no type header) is read as a RunRecorded;
        // enveloped messages still use their own content type.
        endpointConfigurator.UseRawJsonDeserializer(RawSerializerOptions.AnyMessageType, isDefault: true);
        endpointConfigurator.UseMessageRetry(r =>
        {
            r.Ignore<InvalidRunException>();
            r.Ignore<ConflictingRunException>();
            r.Intervals(100, 500, 2000);
        });
        endpointConfigurator.UseInMemoryOutbox(context);
    }
}
