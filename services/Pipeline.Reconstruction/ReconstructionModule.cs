using MassTransit;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Reconstruction;

public static class ReconstructionModule
{
    public static PipelineModule Module { get; } = new(
        "reconstruction",
        (services, _) =>
        {
            services.AddOptions<ReconstructionOptions>().BindConfiguration(ReconstructionOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddSingleton<IReleaseRunner, ProcessReleaseRunner>();
            services.AddSingleton<ReconstructionWorker>();
        },
        bus =>
        {
            bus.AddConsumer<ReconstructFileConsumer, ReconstructFileConsumerDefinition>();
        });
}
