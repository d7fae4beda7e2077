using Microsoft.OpenApi;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Api;

public static class ApiModule
{
    public static PipelineModule Module { get; } = new(
        "api",
        (services, _) =>
        {
            services.AddProblemDetails();
            services.AddEndpointsApiExplorer();
            services.AddSwaggerGen(swagger =>
            {
                swagger.SwaggerDoc("v1", new OpenApiInfo
                {
                    Title = "Pipeline admin API",
                    Version = "v1",
                    Description = "Register runs, follow every raw file through production, find and retry failures.",
                });
            });
        },
        _ => { });

    /// <summary>Error handling, Swagger, health and the API's routes.</summary>
    public static WebApplication UsePipelineApi(this WebApplication app)
    {
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseSwagger();
        app.UseSwaggerUI();
        app.MapPipelineHealth();
        app.MapPipelineEndpoints();
        return app;
    }
}
