using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Collector;

public static class CollectorModule
{
    public static PipelineModule Module { get; } = new(
        "collector",
        (services, _) =>
        {
            // No store: the files' state is asked of the orchestrator (IFileStates).
            services.AddSingleton<IFileStates, OrchestratorFileStates>();
            services.AddOptions<CollectorOptions>().BindConfiguration(CollectorOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddHostedService<LeftoverJobSweeper>();
        },
        bus => bus.AddConsumer<CollectJobLogsConsumer, CollectJobLogsConsumerDefinition>());
}
