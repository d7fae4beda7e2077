using MassTransit;
using Pipeline.Contracts;
using Pipeline.Production.State;

namespace Pipeline.Monitor;

/// <summary>Records each instance's latest heartbeat.</summary>
public sealed class HeartbeatConsumer(IHealthStore health) : IConsumer<InstanceHeartbeat>
{
    public Task Consume(ConsumeContext<InstanceHeartbeat> context)
    {
        var beat = context.Message;
        return health.RecordHeartbeatAsync(new InstanceRecord(beat.Instance, beat.Services, beat.Host, beat.StartedAt, beat.At, beat.Load ?? []), context.CancellationToken);
    }
}

public sealed class HeartbeatConsumerDefinition : ConsumerDefinition<HeartbeatConsumer>
{
    public const string QueueName = "monitor";

    public HeartbeatConsumerDefinition()
    {
        EndpointName = QueueName;
    }
}
