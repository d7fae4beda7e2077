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
    public static Task PublishBoundedAsync<T>(this IPublishEndpoint endpoint, T message, CancellationToken cancellationToken = default)
        where T : class =>
        PublishBoundedAsync(endpoint, message, ConfirmWithin, cancellationToken);

    internal static Task PublishBoundedAsync<T>(IPublishEndpoint endpoint, T message, TimeSpan within, CancellationToken cancellationToken)
        where T : class =>
        ConfirmedWithinAsync(endpoint as ConsumeContext, token => endpoint.Publish(message, token), typeof(T).Name, within, cancellationToken);

    /// <summary>Sends <paramref name="message"/> to <paramref name="destination"/> from a consumer, bounded as a publish is.</summary>
    public static Task SendBoundedAsync<T>(this ConsumeContext context, Uri destination, T message)
        where T : class =>
        ConfirmedWithinAsync(context, async token => await (await context.GetSendEndpoint(destination)).Send(message, token), typeof(T).Name, ConfirmWithin, CancellationToken.None);

    /// <summary>Answers the request being consumed, bounded as a publish is.</summary>
    public static Task RespondBoundedAsync<T>(this ConsumeContext context, T message)
        where T : class =>
        ConfirmedWithinAsync(context, _ => context.RespondAsync(message), typeof(T).Name, ConfirmWithin, CancellationToken.None);

    private static async Task ConfirmedWithinAsync(ConsumeContext? consumed, Func<CancellationToken, Task> send, string what, TimeSpan within, CancellationToken cancellationToken)
    {
        var consumption = consumed?.CancellationToken ?? CancellationToken.None;
        var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, consumption);
        limit.CancelAfter(within);
        try
        {
            // The token asks the client to give up; the wait's own bound holds even where a step of the send does not
            // heed it (waiting for a connection being made again, say), leaving that send to end on its own.
            await send(limit.Token).WaitAsync(within + within, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested && !consumption.IsCancellationRequested)
        {
            throw new TimeoutException($"The broker did not confirm {what} within {within.TotalSeconds:F1} s; the send failed and is tried again.");
        }
        finally
        {
            // From a consumer behind an outbox the send is only recorded here and made, with this token, once the
            // consumer is done: the bound must outlive this call. It goes with the message's own consumption (and its
            // timer); anywhere else the send is over and the bound is given back now.
            if (consumed is null)
            {
                limit.Dispose();
            }
        }
    }

    /// <summary>
    /// A request's answer, failing with <see cref="TimeoutException"/> when the request is not confirmed and answered
    /// within <see cref="ConfirmWithin"/> and <paramref name="answerWithin"/>: the request client's own timeout starts
    /// only once the request has left, which it may never do on a lost connection.
    /// </summary>
    public static async Task<Response<TAnswer>> GetResponseBoundedAsync<TRequest, TAnswer>(
        this IRequestClient<TRequest> client, TRequest request, TimeSpan answerWithin, CancellationToken cancellationToken)
        where TRequest : class
        where TAnswer : class
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(ConfirmWithin + answerWithin);
        try
        {
            return await client.GetResponse<TAnswer>(request, limit.Token).WaitAsync(ConfirmWithin + answerWithin + ConfirmWithin, cancellationToken);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"No answer to {typeof(TRequest).Name} within {(ConfirmWithin + answerWithin).TotalSeconds:F0} s; asked again later.");
        }
    }
}
