using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Monitor;

/// <summary>
/// Keeps the alerts the other stages raise and resolve (the merger's, the archiver's, reconciliation's): the monitor is
/// the one writer of the alert store, and tells people once per occurrence, as it does of its own findings.
/// </summary>
public sealed class AlertConsumer(IHealthStore health, AlertNotifier notifier) : IConsumer<RaiseAlert>, IConsumer<ResolveAlert>
{
    public async Task Consume(ConsumeContext<RaiseAlert> context)
    {
        var alert = context.Message;
        if (await health.RaiseAlertAsync(alert.Key, alert.Kind, alert.Severity, alert.Message, alert.At, context.CancellationToken))
        {
            await notifier.NotifyAsync(AlertNotifier.Raised, new AlertRecord(alert.Key, alert.Kind, alert.Severity, alert.Message, alert.At, alert.At, null), context.CancellationToken);
        }
    }

    public async Task Consume(ConsumeContext<ResolveAlert> context)
    {
        if (await health.ResolveAlertAsync(context.Message.Key, context.Message.At, context.CancellationToken) is { } resolved)
        {
            await notifier.NotifyAsync(AlertNotifier.Resolved, resolved, context.CancellationToken);
        }
    }
}

/// <summary>Alerts from the stages, on a queue of their own: not paused with anything, retried over a store outage.</summary>
public sealed class AlertConsumerDefinition() : QueueConsumerDefinition<AlertConsumer>(QueueName, [100, 500, 2000, 10000], outbox: false)
{
    public const string QueueName = "monitor-alerts";
}
