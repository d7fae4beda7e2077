using Pipeline.Orchestrator;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(OrchestratorModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
