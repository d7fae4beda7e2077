using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Collector;

public static class CollectorModule
{
    public static PipelineModule Module { get; } = new(
        "collector",
        (_, _) => { },
        bus => bus.AddConsumer<CollectJobLogsConsumer, CollectJobLogsConsumerDefinition>());
}
