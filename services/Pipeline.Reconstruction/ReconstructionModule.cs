using MassTransit;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Hosting;
using Pipeline.Production.Jobs;
using Pipeline.Reconstruction.Batch;

namespace Pipeline.Reconstruction;

public static class ReconstructionModule
{
    public static PipelineModule Module { get; } = new(
        "reconstruction",
        (services, configuration) =>
        {
            // The shared pieces this service uses; it keeps no store of its own.
            services.AddFlowControl().AddCampaignDirectory().AddStageReporting();
            services.AddSettings<ReconstructionOptions>(ReconstructionOptions.Section);
            services.AddSettings<SlurmOptions>(SlurmOptions.Section);
            // A batch job on its node reaches the areas with the worker's access settings (file paths, never secrets).
            services.AddSettings<RemoteStorageOptions>(RemoteStorageOptions.Section);
            if (configuration.GetValue<ReleaseExecutor>($"{ReconstructionOptions.Section}:{nameof(ReconstructionOptions.Executor)}") == ReleaseExecutor.Slurm)
            {
                services.AddSingleton<SlurmClient>();
                services.AddSingleton<SlurmJobWatch>();
                services.AddHostedService(sp => sp.GetRequiredService<SlurmJobWatch>());
                services.AddSingleton<IReleaseRunner, SlurmReleaseRunner>();
                services.AddHostedService<SlurmAdoption>();
                services.AddHostedService<SlurmQueueKeeper>();
            }
            else
            {
                services.AddSingleton<IReleaseRunner, ProcessReleaseRunner>();
            }
            services.AddSingleton<JobInputs>();
            services.AddSingleton<ReleaseLauncher>();
            services.AddSingleton<JobOutputs>();
            services.AddSingleton<JobLogs>();
            // Scratch is this host's alone: the service that writes it sweeps what killed jobs left there.
            services.AddSettings<CollectorOptions>(CollectorOptions.Section);
            services.AddFileStates();
            services.AddHostedService<LeftoverJobFolderSweeper>();
            services.AddSingleton<ReconstructionWorker>();
            services.AddSingleton(sp => new StageCapacity(PipelineMetrics.Reconstruction, sp.GetRequiredService<IOptions<ReconstructionOptions>>().Value.EffectiveSlots));
        },
        bus =>
        {
            bus.AddConsumer<ReconstructFileConsumer, ReconstructFileConsumerDefinition>();
        });
}
