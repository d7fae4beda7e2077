using Pipeline.Production.Hosting;
using Pipeline.Stager;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(StagerModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
