using MassTransit;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Publishing with a bound on the wait for the broker's confirmation. RabbitMQ's .NET client (7.x) can leave a
/// publish waiting for ever for the confirmation of a message sent on a connection that was lost without being
/// closed, a network partition in particular (rabbitmq/rabbitmq-dotnet-client#1930): the consumer that published
/// never ends, and with it its endpoint, which cannot restart on the new connection while the consumer runs. Every
/// publish of the services goes through here. A publish not confirmed in time fails like any other broker error:
/// the message being consumed is tried again (what it publishes again is a duplicate the receivers ignore), and
/// periodic work tries again on its next pass.
/// </summary>
public static class BoundedPublish
{
    /// <summary>Far longer than a live broker takes to confirm, even a cluster under load.</summary>
    public static readonly TimeSpan ConfirmWithin = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Publishes <paramref name="message"/> as <typeparamref name="T"/>, failing with <see cref="TimeoutException"/>
    /// when the broker has not confirmed it within <see cref="ConfirmWithin"/>; from a consumer, also when the
    /// consumption is cancelled.
    /// </summary>
    public static async Task PublishBoundedAsync<T>(this IPublishEndpoint endpoint, T message, CancellationToken cancellationToken = default)
        where T : class
    {
        var consumption = endpoint is ConsumeContext consumed ? consumed.CancellationToken : CancellationToken.None;
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, consumption);
        limit.CancelAfter(ConfirmWithin);
        try
        {
            await endpoint.Publish(message, limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && !consumption.IsCancellationRequested)
        {
            throw new TimeoutException($"The broker did not confirm {typeof(T).Name} within {ConfirmWithin.TotalSeconds:F0} s; the publish failed and is tried again.");
        }
    }
}
