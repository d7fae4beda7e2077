using Pipeline.Merger;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(MergerModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
