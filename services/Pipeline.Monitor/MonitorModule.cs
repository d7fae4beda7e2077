using MassTransit;
using Pipeline.Infrastructure.Flow;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Monitor;

public static class MonitorModule
{
    public static PipelineModule Module { get; } = new(
        "monitor",
        (services, _) =>
        {
            services.AddOptions<MonitorOptions>().BindConfiguration(MonitorOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddHttpClient<AlertNotifier>();
            services.AddHostedService<HealthWatcher>();
            services.AddHostedService<AreaLedgerSweeper>();
            services.AddHostedService<TemporaryFileSweeper>();
        },
        bus => bus.AddConsumer<HeartbeatConsumer, HeartbeatConsumerDefinition>());
}
