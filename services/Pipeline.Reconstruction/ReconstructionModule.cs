using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Reconstruction;

public static class ReconstructionModule
{
    public static PipelineModule Module { get; } = new(
        "reconstruction",
        (services, _) =>
        {
            // The shared pieces this service uses; it keeps no store of its own.
            services.AddFlowControl().AddCampaignDirectory().AddStageReporting();
            services.AddOptions<ReconstructionOptions>().BindConfiguration(ReconstructionOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddSingleton<IReleaseRunner, ProcessReleaseRunner>();
            services.AddSingleton<ReconstructionWorker>();
            services.AddSingleton(sp => new StageCapacity(PipelineMetrics.Reconstruction, sp.GetRequiredService<IOptions<ReconstructionOptions>>().Value.EffectiveSlots));
        },
        bus =>
        {
            bus.AddConsumer<ReconstructFileConsumer, ReconstructFileConsumerDefinition>();
        });
}
