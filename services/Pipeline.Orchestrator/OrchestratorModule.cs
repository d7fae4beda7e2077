using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Orchestrator.Campaigns;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

public static class OrchestratorModule
{
    public static PipelineModule Module { get; } = new(
        "orchestrator",
        (services, configuration) =>
        {
            // The shared pieces and stores this service uses.
            services.AddRunIngestion(configuration).AddCampaignWallTimes();
            services.AddStore<IFileSagaStore>().AddStore<IRunRegistry>().AddStore<ICampaignStore>();
            services.AddSettings<OrchestratorOptions>(OrchestratorOptions.Section);
            services.AddHostedService<Watchdog>();
            services.AddSingleton<DispatchSignal>();
            services.AddSingleton<LiveSlots>();
            services.AddConsumeObserver<DispatchWakeUp>();
            services.AddSingleton<ReconstructionDispatcher>();
            services.AddHostedService(sp => sp.GetRequiredService<ReconstructionDispatcher>());
            services.AddHostedService<CampaignFeeder>();
        },
        bus =>
        {
            bus.AddSagaStateMachine<FileStateMachine, FileState, FileStateDefinition>().StoreRepository();
            bus.AddConsumer<RunRecordedConsumer, RunRecordedConsumerDefinition>();
            bus.AddConsumer<CalibrationRegisteredConsumer, CalibrationRegisteredConsumerDefinition>();
            bus.AddConsumer<ResendRunFileProgressConsumer, ResendRunFileProgressConsumerDefinition>();
            bus.AddConsumer<FileStatesQueryConsumer, FileStatesQueryConsumerDefinition>();
            bus.AddConsumer<OverdueFilesQueryConsumer, OverdueFilesQueryConsumerDefinition>();
            bus.AddConsumer<RunTimeRecorder, RunTimeRecorderDefinition>();
            bus.AddConsumer<LiveSlotsConsumer, LiveSlotsConsumerDefinition>();
        });
}
