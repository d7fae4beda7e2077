using Pipeline.Production.Hosting;
using Pipeline.Reconstruction;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(ReconstructionModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
