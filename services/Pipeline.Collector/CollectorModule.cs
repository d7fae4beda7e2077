using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;

namespace Pipeline.Collector;

public static class CollectorModule
{
    public static PipelineModule Module { get; } = new(
        "collector",
        (services, _) =>
        {
            // No store of its own: the files' state is asked of the orchestrator (IFileStates).
            services.AddStageReporting();
            services.AddSingleton<IFileStates, OrchestratorFileStates>();
            services.AddSettings<CollectorOptions>(CollectorOptions.Section);
            services.AddHostedService<LeftoverJobSweeper>();
        },
        bus => bus.AddConsumer<CollectJobLogsConsumer, CollectJobLogsConsumerDefinition>());
}
