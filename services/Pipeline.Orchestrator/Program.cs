using Pipeline.Infrastructure.Hosting;
using Pipeline.Orchestrator;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(OrchestratorModule.Module);

var app = builder.Build();
app.MapPipelineHealth();
app.Run();
