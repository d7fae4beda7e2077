using Pipeline.Production.Hosting;
using Pipeline.Reconstruction;
using Pipeline.Reconstruction.Batch;

// On a compute node, a batch job runs this program as its job wrapper: no host, no broker, no store.
if (args is [JobWrapper.Command, var spec])
{
    return await JobWrapper.MainAsync(spec);
}

var builder = WebApplication.CreateBuilder(args);
builder.AddPipeline(ReconstructionModule.Module);

var app = builder.Build();
app.MapPipelineDefaults();
app.Run();
return 0;
