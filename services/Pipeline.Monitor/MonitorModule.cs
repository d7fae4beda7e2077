using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Monitor;

public static class MonitorModule
{
    public static PipelineModule Module { get; } = new(
        "monitor",
        (services, _) =>
        {
            // The stores this service uses; files' states it asks of the orchestrator.
            services.AddFlowControl().AddStore<IHealthStore>();
            services.AddFileStates();
            services.AddSettings<MonitorOptions>(MonitorOptions.Section);
            services.AddHttpClient<AlertNotifier>();
            services.AddHostedService<HealthWatcher>();
            services.AddHostedService<AreaLedgerSweeper>();
            services.AddHostedService<TemporaryFileSweeper>();
        },
        bus =>
        {
            bus.AddConsumer<HeartbeatConsumer, HeartbeatConsumerDefinition>();
            bus.AddConsumer<AlertConsumer, AlertConsumerDefinition>();
        });
}
