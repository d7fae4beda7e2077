using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Telemetry;
using MassTransit;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Archiver;

public static class ArchiverModule
{
    public static PipelineModule Module { get; } = new(
        "archiver",
        (services, _) =>
        {
            // The stores this service uses.
            services.AddStore<IMergeStore>().AddStore<ICatalog>().AddStore<IFlowStore>();
            services.AddOptions<ArchiverOptions>().BindConfiguration(ArchiverOptions.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddSingleton<Movers>();
            services.AddOptions<ReconciliationSettings>().BindConfiguration(ReconciliationSettings.Section).ValidateDataAnnotations().ValidateOnStart();
            services.AddHostedService<ReconciliationService>();
            services.AddSingleton(sp => new StageCapacity(PipelineMetrics.Archive, sp.GetRequiredService<IOptions<ArchiverOptions>>().Value.Writers));
        },
        bus => bus.AddConsumer<ArchiveMergedFileConsumer, ArchiveMergedFileConsumerDefinition>());
}
