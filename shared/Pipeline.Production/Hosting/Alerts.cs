using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.Hosting;

/// <summary>
/// How a stage raises and resolves alerts: by message to the monitor, which alone keeps them (a stage writes nothing
/// into the monitor's store). A repeated raise only refreshes the alert, so a stage may raise what it sees on every pass.
/// </summary>
public interface IAlerts
{
    Task RaiseAsync(string key, string kind, string severity, string message, CancellationToken cancellationToken);

    Task ResolveAsync(string key, CancellationToken cancellationToken);
}

/// <summary>Alerts as messages on the bus.</summary>
public sealed class BusAlerts(IBus bus, TimeProvider time) : IAlerts
{
    public Task RaiseAsync(string key, string kind, string severity, string message, CancellationToken cancellationToken) =>
        bus.PublishBoundedAsync(new RaiseAlert(key, kind, severity, message, time.GetUtcNow()), cancellationToken);

    public Task ResolveAsync(string key, CancellationToken cancellationToken) =>
        bus.PublishBoundedAsync(new ResolveAlert(key, time.GetUtcNow()), cancellationToken);
}
