using Pipeline.Reconstruction;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(ReconstructionModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
