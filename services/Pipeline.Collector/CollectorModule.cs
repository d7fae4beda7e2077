using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.State;

namespace Pipeline.Collector;

public static class CollectorModule
{
    public static PipelineModule Module { get; } = new(
        "collector",
        (services, _) =>
        {
            // The stores this service uses.
            services.AddStore<IFileSagaStore>();
            services.AddOptions<CollectorOptions>().BindConfiguration(CollectorOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddHostedService<LeftoverJobSweeper>();
        },
        bus => bus.AddConsumer<CollectJobLogsConsumer, CollectJobLogsConsumerDefinition>());
}
