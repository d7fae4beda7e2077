using Pipeline.Host;

// pipeline [run] [--urls ...]   the whole pipeline in one process (make run)
// pipeline demo [RUNS=… FILES=… EVENTS=… in the environment]   sample data end to end, one JSON line (make demo)
if (args.FirstOrDefault() == "demo")
{
    return await DemoCommand.RunAsync(args[1..]);
}

var app = PipelineApp.Build(args.FirstOrDefault() == "run" ? args[1..] : args);
await app.StartAsync();
app.Logger.LogInformation("Pipeline running: admin API and Swagger UI at {Urls}/swagger, state in {DataDirectory}",
    string.Join(", ", app.Urls), app.Configuration["Pipeline:DataDirectory"] ?? "./data");
await SampleRuns.PublishAsync(app, app.Lifetime.ApplicationStopping);
await app.WaitForShutdownAsync();
return 0;
