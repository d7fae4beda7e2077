using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;

namespace Pipeline.Stager;

public static class StagerModule
{
    public static PipelineModule Module { get; } = new(
        "stager",
        (services, configuration) =>
        {
            // The shared pieces this service uses; it keeps no store of its own.
            services.AddFlowControl().AddCampaignDirectory().AddArchiveLibrary(configuration).AddStageReporting();
            services.AddSettings<StagerOptions>(StagerOptions.Section);
            services.AddFileStates();
        },
        bus =>
        {
            bus.AddConsumer<StageFileConsumer, StageFileConsumerDefinition>();
            bus.AddConsumer<DiscardStagedFileConsumer, DiscardStagedFileConsumerDefinition>();
        });
}
