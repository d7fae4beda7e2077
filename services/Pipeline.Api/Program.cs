using Pipeline.Api;
using Pipeline.Production.Hosting;

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(ApiModule.Module);

var app = builder.Build();
app.UsePipelineApi();
app.Run();
