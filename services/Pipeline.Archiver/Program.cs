using Pipeline.Archiver;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(ArchiverModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
