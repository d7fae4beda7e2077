using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Merger;

public static class MergerModule
{
    public static PipelineModule Module { get; } = new(
        "merger",
        (services, _) =>
        {
            // The shared pieces and stores this service uses.
            services.AddFlowControl().AddCampaignDirectory().AddStageReporting().AddAlerts();
            services.AddStore<IMergeStore>().AddStore<IRunLedger>();
            services.AddSettings<MergerOptions>(MergerOptions.Section);
            services.AddHostedService<MergeService>();
        },
        bus =>
        {
            bus.AddConsumer<MergeOutputConsumer, MergeOutputConsumerDefinition>();
            bus.AddConsumer<RunFileProgressConsumer, RunFileProgressConsumerDefinition>();
            bus.AddConsumer<OutputsArchivedConsumer, OutputsArchivedConsumerDefinition>();
            bus.AddConsumer<RemakeMergedFileConsumer, RemakeMergedFileConsumerDefinition>();
            bus.AddConsumer<ResendMergedFileConsumer, ResendMergedFileConsumerDefinition>();
        });
}
