using Pipeline.Monitor;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(MonitorModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
