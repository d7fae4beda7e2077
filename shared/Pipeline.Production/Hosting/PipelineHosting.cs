using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Control;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Serilog;
using Serilog.Configuration;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace Pipeline.Production.Hosting;

public static class PipelineHosting
{
    /// <summary>
    /// Everything a pipeline process needs, then the given stages: logging, options, storage areas,
    /// the state store, the bus on the configured transport, and health checks.
    /// </summary>
    public static WebApplicationBuilder AddPipeline(this WebApplicationBuilder builder, params PipelineModule[] modules)
    {
        var services = builder.Services;
        var configuration = builder.Configuration;

        services.AddSettings<PipelineOptions>(PipelineOptions.Section);
        var options = configuration.GetSection(PipelineOptions.Section).Get<PipelineOptions>() ?? new PipelineOptions();

        services.AddSerilog((_, logger) => ConfigureLogging(logger, configuration, options));
        AddStorageAndState(services, configuration, options);
        services.AddSingleton<IReadOnlyList<PipelineModule>>(modules);
        // Every consumer obeys an operator's pause: the pauses are read before the bus starts, so the paused
        // stages are known before the first message arrives.
        services.AddStore<IControlStore>();
        services.AddSingleton<PauseState>();
        services.AddHostedService<PauseStateRefresher>();
        services.AddHostedService<HeartbeatPublisher>();
        AddTelemetry(services, configuration, modules);

        foreach (var module in modules)
        {
            module.ConfigureServices(services, configuration);
        }

        services.AddMassTransit(bus =>
        {
            // MassTransit would report its usage to a server outside the experiment, by default: nothing of a
            // production leaves the site unasked, and on a farm without outside access each attempt logged a warning.
            bus.DisableUsageTelemetry();
            bus.SetKebabCaseEndpointNameFormatter();
            if (options.Transport == TransportKind.RabbitMq && options.RabbitMq.QuorumQueues)
            {
                bus.AddConfigureEndpointsCallback((_, name, endpoint) =>
                {
                    // A temporary queue (one per instance, removed when it stops) cannot be a quorum queue.
                    if (endpoint is IRabbitMqReceiveEndpointConfigurator rabbit && !name.StartsWith(InstanceQueues.Prefix, StringComparison.Ordinal))
                    {
                        rabbit.SetQuorumQueue();
                    }
                });
            }
            foreach (var module in modules)
            {
                module.ConfigureBus(bus);
            }
            switch (options.Transport)
            {
                case TransportKind.RabbitMq:
                    bus.UsingRabbitMq((context, rabbit) =>
                    {
                        rabbit.Host(new Uri(options.RabbitMq.Uri), host =>
                        {
                            host.Heartbeat(TimeSpan.FromSeconds(options.RabbitMq.HeartbeatSeconds));
                            if (options.RabbitMq.ClusterNodes.Count > 0)
                            {
                                host.UseCluster(cluster =>
                                {
                                    foreach (var node in options.RabbitMq.ClusterNodes)
                                    {
                                        cluster.Node(node);
                                    }
                                });
                            }
                        });
                        rabbit.PrefetchCount = options.Prefetch;
                        rabbit.UseConsumeFilter(typeof(FileContextFilter<>), context);
                        rabbit.UseConsumeFilter(typeof(PauseFilter<>), context);
                        rabbit.ConfigureEndpoints(context);
                    });
                    break;
                default:
                    bus.UsingInMemory((context, memory) =>
                    {
                        memory.UseConsumeFilter(typeof(FileContextFilter<>), context);
                        memory.UseConsumeFilter(typeof(PauseFilter<>), context);
                        memory.ConfigureEndpoints(context);
                    });
                    break;
            }
        });

        // Start-up returns only once every receive endpoint is bound, so nothing published right after start is dropped.
        services.AddOptions<MassTransitHostOptions>().Configure(host =>
        {
            host.WaitUntilStarted = true;
            host.StartTimeout = TimeSpan.FromMinutes(2);
            host.StopTimeout = TimeSpan.FromSeconds(30);
        });
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store", tags: ["ready"]);
        return builder;
    }

    /// <summary>
    /// Metrics for Prometheus at /metrics (the stages', MassTransit's, the HTTP server's) and traces across
    /// services through MassTransit's activity source, exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    /// </summary>
    private static void AddTelemetry(IServiceCollection services, IConfiguration configuration, PipelineModule[] modules)
    {
        var serviceName = modules.Length == 1 ? $"pipeline-{modules[0].Name}" : "pipeline";
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService(serviceName))
            .WithMetrics(metrics => metrics
                .AddMeter(PipelineMetrics.MeterName, "MassTransit")
                .AddAspNetCoreInstrumentation()
                .AddPrometheusExporter())
            .WithTracing(tracing => tracing
                .AddSource("MassTransit", FileTracing.SourceName)
                .AddAspNetCoreInstrumentation(aspnet => aspnet.Filter = http => !http.Request.Path.StartsWithSegments("/health") && !http.Request.Path.StartsWithSegments("/metrics")));
        if (!string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            telemetry.UseOtlpExporter();
        }
    }

    /// <summary>
    /// The storage areas and the state store as configured: what every pipeline process has. A service adds the
    /// stores and shared pieces it uses (<see cref="StoreRegistration.AddStore{TStore}"/>, <see cref="ProductionServices"/>).
    /// </summary>
    public static void AddStorageAndState(IServiceCollection services, IConfiguration configuration, PipelineOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        // Settings are bound from the configuration: a tool's own container has it only from here.
        services.TryAddSingleton(configuration);
        // The archive library counts tape mounts: the metrics need a meter factory, which a tool's container lacks.
        services.AddMetrics();
        services.TryAddSingleton<PipelineMetrics>();
        var archives = ArchiveAreas(configuration);
        services.AddSingleton(_ => StorageAreas.FromConfiguration(
            configuration.GetSection(StorageOptions.Section).GetChildren().ToDictionary(c => c.Key, c => c.Value, StringComparer.Ordinal),
            options.DataDirectory,
            archives.Where(a => a.Value.Kind != ArchiveKind.Command).Select(a => a.Key),
            configuration.GetSection(RemoteStorageOptions.Section).Get<RemoteStorageOptions>()));
        services.AddSingleton(_ => StoreBackend.Open(options));
        // Work that runs once per system (the dispatcher, the feeder, the sweeps, a reconciliation asked for by hand)
        // under leases in the store.
        services.AddStore<ISingletonLeaseStore>();
        services.AddSettings<SingletonOptions>(SingletonOptions.Section);
        services.TryAddSingleton<SingletonLeases>();
        if (options.Store == StoreKind.Mongo)
        {
            // Registered before the bus, so the collections and indexes exist before the first message is consumed.
            services.AddHostedService<MongoInitialisation>();
        }
        if (options.Store == StoreKind.Postgres)
        {
            // Registered before the bus: the tables are at their version, and the server answers, before the first message.
            services.AddHostedService<PostgresInitialisation>();
        }
    }

    /// <summary>The configured archive areas; "archive" is always one of them (a folder unless configured otherwise).</summary>
    public static IReadOnlyDictionary<string, ArchiveAreaOptions> ArchiveAreas(IConfiguration configuration)
    {
        var archives = new Dictionary<string, ArchiveAreaOptions>(StringComparer.Ordinal);
        foreach (var section in configuration.GetSection(ArchiveAreaOptions.Section).GetChildren())
        {
            archives[section.Key] = section.Get<ArchiveAreaOptions>() ?? new ArchiveAreaOptions();
        }
        archives.TryAdd(StorageOptions.Archive, new ArchiveAreaOptions());
        return archives;
    }

    private static AreaArchive TapeArchive(StorageArea area, string library, TapeOptions tape, PipelineMetrics metrics)
    {
        metrics.TapeLibrary(library);
        return new AreaArchive(area, new TapeDrives(library, tape, () => metrics.TapeMounted(library)));
    }

    internal static ArchiveLibrary CreateArchiveLibrary(IReadOnlyDictionary<string, ArchiveAreaOptions> archives, IServiceProvider services)
    {
        var areas = services.GetRequiredService<StorageAreas>();
        var metrics = services.GetRequiredService<PipelineMetrics>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger<ArchiveLibrary>();
        return new ArchiveLibrary(archives.Select(a => a.Value.Kind switch
        {
            ArchiveKind.Command => (IArchive)new CommandArchive(a.Key, a.Value.Command, logger),
            ArchiveKind.Tape => TapeArchive(areas[a.Key], a.Key, a.Value.Tape, metrics),
            ArchiveKind.Nearline => new NearlineArchive(areas[a.Key], a.Value.Nearline, services.GetRequiredService<TimeProvider>()),
            _ => new AreaArchive(areas[a.Key], null),
        }));
    }

    /// <summary>
    /// MassTransit's warning, with its stack, that it retries a message after a saga version conflict: two messages
    /// about one file saved at once, the expected race of optimistic concurrency. The saga repository logs each at
    /// debug instead; a retry that gives up is logged as a warning with its reason (<see cref="ExpectedFaultSink"/>).
    /// </summary>
    public static bool IsRetriedSagaRace(LogEvent logEvent) =>
        logEvent.Level == LogEventLevel.Warning
        && logEvent.MessageTemplate.Text.StartsWith("R-RETRY", StringComparison.Ordinal)
        && IsSagaRace(logEvent.Exception);

    private static bool IsSagaRace(Exception? exception) =>
        exception is ConcurrencyConflictException || (exception?.InnerException is { } inner && IsSagaRace(inner));

    private static void ConfigureLogging(LoggerConfiguration logger, IConfiguration configuration, PipelineOptions options)
    {
        logger.MinimumLevel.Information()
            .MinimumLevel.Override("Microsoft", LogEventLevel.Warning)
            .MinimumLevel.Override("Microsoft.Hosting.Lifetime", LogEventLevel.Information)
            .MinimumLevel.Override("MassTransit", LogEventLevel.Warning)
            .ReadFrom.Configuration(configuration)
            .Enrich.FromLogContext()
            .Enrich.WithProperty("Instance", options.EffectiveInstanceName)
            .Enrich.With<LogIdsEnricher>()
            .Filter.ByExcluding(IsRetriedSagaRace);
        // Logs go to stderr so that a command's stdout carries only its result (make demo's JSON line). An expected
        // failure that MassTransit retries or gives up on is written as a warning without its stack (ExpectedFaultSink).
        logger.WriteTo.Sink(LoggerSinkConfiguration.Wrap(sink => new ExpectedFaultSink(sink), to =>
        {
            if (options.LogFormat == "json")
            {
                to.Console(new RenderedCompactJsonFormatter(), standardErrorFromLevel: LogEventLevel.Verbose);
            }
            else
            {
                to.Console(
                    outputTemplate: "[{Timestamp:HH:mm:ss} {Level:u3}] {SourceContext:l}: {Message:lj}{" + LogIdsEnricher.PropertyName + ":l}{NewLine}{Exception}",
                    standardErrorFromLevel: LogEventLevel.Verbose);
            }
        }));
    }

    /// <summary>
    /// What every service serves: /health/live answers while the process runs, /health/ready when the store
    /// and the bus work, /metrics in Prometheus text.
    /// </summary>
    public static IEndpointRouteBuilder MapPipelineDefaults(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint();
        endpoints.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        endpoints.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready"), ResponseWriter = WriteReadinessAsync });
        return endpoints;
    }

    /// <summary>Readiness as JSON with each check's reason, so that a probe's log says what is missing, not only that something is.</summary>
    private static Task WriteReadinessAsync(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(System.Text.Json.JsonSerializer.Serialize(new
        {
            status = report.Status.ToString(),
            checks = report.Entries.Select(e => new { name = e.Key, status = e.Value.Status.ToString(), reason = e.Value.Description }),
        }));
    }
}

/// <summary>Prepares the MongoDB database at start-up (server check, collections, indexes); the process does not start without it.</summary>
internal sealed class MongoInitialisation(StoreBackend backend) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => backend.MongoContext!.InitialiseAsync(cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>
/// Waits for the PostgreSQL server and migrates every concern's tables before the process consumes anything: a server
/// not up yet (the hosts started together, say) is waited for, with its reason logged, not a reason to exit.
/// </summary>
internal sealed class PostgresInitialisation(StoreBackend backend, TimeProvider time, ILogger<PostgresInitialisation> logger) : IHostedService
{
    public static readonly TimeSpan RetryInterval = TimeSpan.FromSeconds(5);

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            try
            {
                backend.PrepareEveryConcern();
                return;
            }
            catch (Exception ex) when (ex is Npgsql.NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
            {
                logger.LogWarning("The state store on PostgreSQL at {Server} cannot be prepared yet ({Reason}); trying again in {Seconds} s",
                    backend.PostgresDatabase!.Describe(), ex.Message, RetryInterval.TotalSeconds);
                await Task.Delay(RetryInterval, time, cancellationToken);
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

internal sealed class StoreHealthCheck(StoreBackend backend) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            await backend.PingAsync(cancellationToken);
            return HealthCheckResult.Healthy();
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return HealthCheckResult.Unhealthy($"The state store does not answer: {ex.Message}");
        }
    }
}
