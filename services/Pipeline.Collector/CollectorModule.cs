using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;
using Pipeline.Production.Jobs;

namespace Pipeline.Collector;

public static class CollectorModule
{
    public static PipelineModule Module { get; } = new(
        "collector",
        (services, _) =>
        {
            // The files' state is asked of the orchestrator (IFileStates); the flow ledger gives back the room of the
            // leftover outputs it removes.
            services.AddStageReporting();
            services.AddFlowControl();
            services.AddFileStates();
            services.AddSettings<CollectorOptions>(CollectorOptions.Section);
            services.AddHostedService<LeftoverOutputSweeper>();
        },
        bus => bus.AddConsumer<CollectJobLogsConsumer, CollectJobLogsConsumerDefinition>());
}
