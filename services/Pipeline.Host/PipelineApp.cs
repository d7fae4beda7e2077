using Pipeline.Api;
using Pipeline.Archiver;
using Pipeline.Collector;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Merger;
using Pipeline.Monitor;
using Pipeline.Orchestrator;
using Pipeline.Production.Hosting;
using Pipeline.Reconstruction;
using Pipeline.Stager;

namespace Pipeline.Host;

/// <summary>The whole pipeline in one process, composed from the same modules the per-stage services run.</summary>
public static class PipelineApp
{
    public const string DefaultUrl = "http://127.0.0.1:8080";

    public static readonly PipelineModule[] AllModules =
    [
        OrchestratorModule.Module,
        StagerModule.Module,
        ReconstructionModule.Module,
        CollectorModule.Module,
        MergerModule.Module,
        ArchiverModule.Module,
        MonitorModule.Module,
        ApiModule.Module,
    ];

    /// <summary>
    /// Builds the all-in-one application; <paramref name="settings"/> override configuration and
    /// <paramref name="overrideServices"/> replaces registrations (the demo and tests use them).
    /// </summary>
    public static WebApplication Build(string[] args, IReadOnlyDictionary<string, string?>? settings = null, Action<IServiceCollection>? overrideServices = null)
    {
        // Settings ship beside the program; relative paths in them (./data) still mean the working directory.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        if (settings is not null)
        {
            builder.Configuration.AddInMemoryCollection(settings);
        }
        if (string.IsNullOrEmpty(builder.Configuration["urls"]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }
        builder.AddPipeline(AllModules);
        overrideServices?.Invoke(builder.Services);
        var app = builder.Build();
        app.UsePipelineApi();
        return app;
    }
}
