using Pipeline.Collector;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(CollectorModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
