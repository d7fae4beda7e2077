using Pipeline.Stager;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(StagerModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
