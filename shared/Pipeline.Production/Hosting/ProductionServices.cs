using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Flow;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;

namespace Pipeline.Production.Hosting;

/// <summary>
/// The shared pieces a service adds when it uses them, each with the stores it needs. A module calls the ones its
/// stage uses; the all-in-one host composes every module, and adding a piece twice adds it once.
/// </summary>
public static class ProductionServices
{
    /// <summary>Back-pressure on the bounded areas: the settings, the gate a filling stage waits at, the ledger.</summary>
    public static IServiceCollection AddFlowControl(this IServiceCollection services)
    {
        services.AddSettings<FlowOptions>(FlowOptions.Section);
        services.AddStore<IFlowStore>();
        services.TryAddSingleton<FlowControl>();
        services.TryAddSingleton<AreaGate>();
        services.AddHostedService<FlowControlRefresher>();
        return services;
    }

    /// <summary>Where files stand, asked of the orchestrator, which owns their state (every stage but the orchestrator asks this way).</summary>
    public static IServiceCollection AddFileStates(this IServiceCollection services)
    {
        services.TryAddSingleton<Jobs.IFileStates, Jobs.OrchestratorFileStates>();
        return services;
    }

    /// <summary>The campaigns: the configured default and those defined through the API.</summary>
    public static IServiceCollection AddCampaignDirectory(this IServiceCollection services)
    {
        services.AddSettings<CampaignOptions>(CampaignOptions.Section);
        services.AddStore<ICampaignStore>();
        services.TryAddSingleton<CampaignDirectory>();
        return services;
    }

    /// <summary>
    /// Campaigns' time limits from their measured run times: the orchestrator records each reconstruction's run time and
    /// gives every request the limit; the API shows it.
    /// </summary>
    public static IServiceCollection AddCampaignWallTimes(this IServiceCollection services)
    {
        services.AddStore<IRunTimeStore>();
        services.AddSettings<WallTimeOptions>(WallTimeOptions.Section);
        services.TryAddSingleton<CampaignWallTimes>();
        return services;
    }

    /// <summary>Registering runs and their files, and defining campaigns: what the orchestrator and the API do.</summary>
    public static IServiceCollection AddRunIngestion(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddCampaignDirectory().AddFlowControl().AddArchiveLibrary(configuration);
        services.AddStore<IRunRegistry>().AddStore<ICatalog>().AddStore<IFileSagaStore>();
        services.TryAddSingleton<RunIngestion>();
        services.TryAddSingleton<CampaignService>();
        return services;
    }

    /// <summary>The archive areas behind their drivers (folders, the simulated tape library, copy commands).</summary>
    public static IServiceCollection AddArchiveLibrary(this IServiceCollection services, IConfiguration configuration)
    {
        services.TryAddSingleton(sp => PipelineHosting.CreateArchiveLibrary(PipelineHosting.ArchiveAreas(configuration), sp));
        return services;
    }

    /// <summary>The reconciliation of the catalog against the archive areas.</summary>
    public static IServiceCollection AddReconciliation(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddArchiveLibrary(configuration).AddAlerts();
        services.AddStore<ICatalog>();
        services.TryAddSingleton<Reconciler>();
        return services;
    }

    /// <summary>The audit of a campaign: from its records and the catalog, and from the bytes when asked.</summary>
    public static IServiceCollection AddCampaignAudit(this IServiceCollection services)
    {
        services.AddStore<IFileSagaStore>().AddStore<ICatalog>();
        services.TryAddSingleton<CampaignAudit>();
        return services;
    }

    /// <summary>Alerts raised and resolved by message to the monitor, which keeps them.</summary>
    public static IServiceCollection AddAlerts(this IServiceCollection services)
    {
        services.TryAddSingleton<IAlerts, BusAlerts>();
        return services;
    }

    /// <summary>A stage's account of its work: to this process's metrics and to the shared hourly activity log.</summary>
    public static IServiceCollection AddStageReporting(this IServiceCollection services)
    {
        services.AddStore<IActivityLog>();
        services.TryAddSingleton<StageReporter>();
        return services;
    }
}
