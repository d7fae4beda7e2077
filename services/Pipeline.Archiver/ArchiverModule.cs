using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Archiver;

public static class ArchiverModule
{
    public static PipelineModule Module { get; } = new(
        "archiver",
        (services, configuration) =>
        {
            // The shared pieces and stores this service uses.
            services.AddFlowControl().AddCampaignDirectory().AddArchiveLibrary(configuration).AddReconciliation(configuration).AddStageReporting();
            services.AddStore<IArchiveQueue>().AddStore<ICatalog>().AddStore<IFlowStore>();
            services.AddSettings<ArchiverOptions>(ArchiverOptions.Section);
            services.AddSingleton<Movers>();
            services.AddSingleton<MigrationWatch>();
            services.AddHostedService(sp => sp.GetRequiredService<MigrationWatch>());
            services.AddSettings<ReconciliationSettings>(ReconciliationSettings.Section);
            services.AddHostedService<ReconciliationService>();
            services.AddSingleton(sp => new StageCapacity(PipelineMetrics.Archive, sp.GetRequiredService<IOptions<ArchiverOptions>>().Value.Writers));
        },
        bus => bus.AddConsumer<ArchiveMergedFileConsumer, ArchiveMergedFileConsumerDefinition>());
}
