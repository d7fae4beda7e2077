using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Audit;
using Pipeline.Production.Control;

namespace Pipeline.Archiver;

/// <summary>
/// Runs the reconciliation sweep every <see cref="ReconciliationSettings.IntervalMinutes"/>, in the service that
/// owns the archive areas. What it finds is raised as alerts (one per bad or dark file) and logged.
/// </summary>
public sealed class ReconciliationService(
    Reconciler reconciler, IOptions<ReconciliationSettings> options, SingletonLeases singletons, TimeProvider time, ILogger<ReconciliationService> logger)
    : PeriodicWork(time, logger)
{
    protected override ISingletonGate Singleton { get; } = singletons.For(Singletons.Reconciliation);

    protected override TimeSpan Interval => TimeSpan.FromMinutes(options.Value.IntervalMinutes);

    protected override string What => "The reconciliation sweep";

    protected override bool PassAtStart => false;

    public override Task StartAsync(CancellationToken cancellationToken) =>
        // A sweep every 0 minutes means none: the operators run it by hand.
        options.Value.IntervalMinutes > 0 ? base.StartAsync(cancellationToken) : Task.CompletedTask;

    protected override Task RunOnceAsync(CancellationToken stoppingToken) => reconciler.RunAsync(options.Value.ToOptions(), Singleton.Fence, stoppingToken);
}
