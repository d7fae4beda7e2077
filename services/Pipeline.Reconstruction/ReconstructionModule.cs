using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Telemetry;
using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;
using Pipeline.Production.Hosting;

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
