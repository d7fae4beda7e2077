using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Stager;

public static class StagerModule
{
    public static PipelineModule Module { get; } = new(
        "stager",
        (services, _) => services.AddOptions<StagerOptions>().BindConfiguration(StagerOptions.Section).ValidateDataAnnotations().ValidateOnStart(),
        bus =>
        {
            bus.AddConsumer<StageFileConsumer, StageFileConsumerDefinition>();
            bus.AddConsumer<DiscardStagedFileConsumer>();
        });
}
