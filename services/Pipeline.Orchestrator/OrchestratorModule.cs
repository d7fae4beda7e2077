using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Sagas;
using Pipeline.Infrastructure.State;

namespace Pipeline.Orchestrator;

public static class OrchestratorModule
{
    public static PipelineModule Module { get; } = new(
        "orchestrator",
        (services, _) =>
        {
            services.AddOptions<OrchestratorOptions>().BindConfiguration(OrchestratorOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddHostedService<Watchdog>();
        },
        bus =>
        {
            bus.AddSagaStateMachine<FileStateMachine, FileState, FileStateDefinition>().StoreRepository();
            bus.AddConsumer<RunRecordedConsumer, RunRecordedConsumerDefinition>();
        });
}
