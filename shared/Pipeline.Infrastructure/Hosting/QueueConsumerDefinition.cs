using MassTransit;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// A stage's consumer on a queue of its own: a failed message is retried at the given intervals (then goes to the
/// error queue with its reason); what it publishes leaves only once it succeeded (in-memory outbox); and with
/// <c>slots</c>, it takes at most that many messages at once and prefetches no more, so that queued work stays
/// available to the stage's other instances.
/// </summary>
public abstract class QueueConsumerDefinition<TConsumer> : ConsumerDefinition<TConsumer>
    where TConsumer : class, IConsumer
{
    private readonly int[] _retryMilliseconds;
    private readonly int? _slots;
    private readonly bool _outbox;

    protected QueueConsumerDefinition(string queue, int[] retryMilliseconds, int? slots = null, bool outbox = true)
    {
        EndpointName = queue;
        _retryMilliseconds = retryMilliseconds;
        _slots = slots;
        _outbox = outbox;
        if (slots is { } limit)
        {
            ConcurrentMessageLimit = limit;
        }
    }

    protected override void ConfigureConsumer(IReceiveEndpointConfigurator endpointConfigurator, IConsumerConfigurator<TConsumer> consumerConfigurator, IRegistrationContext context)
    {
        if (_slots is { } slots)
        {
            endpointConfigurator.PrefetchCount = slots;
        }
        endpointConfigurator.UseMessageRetry(r => r.Intervals(_retryMilliseconds));
        if (_outbox)
        {
            endpointConfigurator.UseInMemoryOutbox(context);
        }
    }
}

/// <summary>
/// Queues of one service instance, for what every instance must hear (heartbeats, say): named after the instance, removed
/// when it stops, and never quorum queues (a quorum queue cannot be temporary).
/// </summary>
public static class InstanceQueues
{
    public const string Prefix = "instance-";

    /// <summary>A queue of this process for <paramref name="purpose"/>: unique even where several processes share an instance name.</summary>
    public static string Name(string instance, string purpose) => $"{Prefix}{instance}-{Guid.NewGuid().ToString("N")[..8]}-{purpose}";
}
