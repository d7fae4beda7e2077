using Microsoft.AspNetCore.Authentication;
using Microsoft.OpenApi;
using Pipeline.Api.Security;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Api;

public static class ApiModule
{
    public static PipelineModule Module { get; } = new(
        "api",
        (services, configuration) =>
        {
            // The shared pieces and stores this service uses.
            services.AddRunIngestion(configuration).AddReconciliation(configuration).AddCampaignWallTimes().AddCampaignAudit();
            services.AddStore<IFileSagaStore>().AddStore<IRunRegistry>().AddStore<ICatalog>().AddStore<ICampaignStore>().AddStore<IFlowStore>().AddStore<IHealthStore>().AddStore<IControlStore>().AddStore<IActivityLog>().AddStore<IMergeStore>();
            services.AddProblemDetails();
            // A number sent as a string is a wrong type, not a number: refused, as every other wrong type is.
            services.ConfigureHttpJsonOptions(json => json.SerializerOptions.NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.Strict);
            services.AddSettings<ApiSecurityOptions>(ApiSecurityOptions.Section);
            services.AddSingleton<ApiKeyRing>();
            services.AddHostedService<FileStateCounter>();
            services.AddSingleton<CampaignProgressSampler>();
            services.AddHostedService(sp => sp.GetRequiredService<CampaignProgressSampler>());
            services.AddAuthentication(ApiKeyAuthenticationHandler.SchemeName)
                .AddScheme<AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(ApiKeyAuthenticationHandler.SchemeName, null);
            services.AddAuthorizationBuilder()
                .AddPolicy(ApiPolicies.Read, policy => policy.RequireRole(ApiRoles.Viewer, ApiRoles.Operator))
                .AddPolicy(ApiPolicies.Act, policy => policy.RequireRole(ApiRoles.Operator));
            services.AddEndpointsApiExplorer();
            services.AddSwaggerGen(swagger =>
            {
                swagger.SwaggerDoc("v1", new OpenApiInfo
                {
                    Title = "Pipeline admin API",
                    Version = "v1",
                    Description = "Register runs, follow every raw file through production, find and retry failures. "
                        + $"Every call needs an API key in the {ApiKeyRing.HeaderName} header: a viewer's to read, an operator's to act.",
                });
                swagger.AddSecurityDefinition(ApiKeyAuthenticationHandler.SchemeName, new OpenApiSecurityScheme
                {
                    Type = SecuritySchemeType.ApiKey,
                    In = ParameterLocation.Header,
                    Name = ApiKeyRing.HeaderName,
                    Description = "A viewer key reads; an operator key also registers runs and retries files.",
                });
                swagger.OperationFilter<RequestExamples>();
                swagger.AddSecurityRequirement(document => new OpenApiSecurityRequirement
                {
                    [new OpenApiSecuritySchemeReference(ApiKeyAuthenticationHandler.SchemeName, document)] = [],
                });
            });
        },
        _ => { });

    /// <summary>Error handling, authentication, Swagger, health and the API's routes.</summary>
    public static WebApplication UsePipelineApi(this WebApplication app)
    {
        // Read the keys now, so a bad key setting stops the start and generated keys are announced at once.
        app.Services.GetRequiredService<ApiKeyRing>();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseRequestBodyLimit();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseSwagger();
        app.UseSwaggerUI();
        app.MapPipelineDefaults();
        app.MapPipelineEndpoints();
        app.MapFileEndpoints();
        app.MapBrowseEndpoints();
        app.MapFlowEndpoints();
        app.MapCampaignEndpoints();
        app.MapCalibrationEndpoints();
        app.MapDashboard();
        return app;
    }
}
