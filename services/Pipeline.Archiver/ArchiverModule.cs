using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Archiver;

public static class ArchiverModule
{
    public static PipelineModule Module { get; } = new(
        "archiver",
        (services, _) => services.AddOptions<ArchiverOptions>().BindConfiguration(ArchiverOptions.Section).ValidateDataAnnotations().ValidateOnStart(),
        bus => bus.AddConsumer<ArchiveMergedFileConsumer, ArchiveMergedFileConsumerDefinition>());
}
