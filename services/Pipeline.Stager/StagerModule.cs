using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Stager;

public static class StagerModule
{
    public static PipelineModule Module { get; } = new(
        "stager",
        (_, _) => { },
        bus => bus.AddConsumer<StageFileConsumer, StageFileConsumerDefinition>());
}
