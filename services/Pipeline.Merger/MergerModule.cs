using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Merger;

public static class MergerModule
{
    public static PipelineModule Module { get; } = new(
        "merger",
        (services, _) =>
        {
            services.AddOptions<MergerOptions>().BindConfiguration(MergerOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddHostedService<MergeService>();
        },
        bus =>
        {
            bus.AddConsumer<MergeOutputConsumer, MergeOutputConsumerDefinition>();
            bus.AddConsumer<OutputsArchivedConsumer, OutputsArchivedConsumerDefinition>();
            bus.AddConsumer<RemakeMergedFileConsumer, RemakeMergedFileConsumerDefinition>();
        });
}
