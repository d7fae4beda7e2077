using Pipeline.Host;

// pipeline [run] [--urls ...]   the whole pipeline in one process (make run)
// pipeline demo [RUNS=… FILES=… EVENTS=… in the environment]   sample data end to end, one JSON line (make demo)
// pipeline audit CAMPAIGN [--Pipeline:DataDirectory=DIR]   the catalog audit of a campaign, as JSON (make audit)
// pipeline reconcile [--dry-run] [--verify] [--dark-after-minutes=N]   the catalog against the archive areas, as JSON (make reconcile)
if (args.FirstOrDefault() == "demo")
{
    return await DemoCommand.RunAsync(args[1..]);
}
if (args.FirstOrDefault() == "audit")
{
    return await AuditCommand.RunAsync(args[1..]);
}
if (args.FirstOrDefault() == "reconcile")
{
    return await ReconcileCommand.RunAsync(args[1..]);
}

var app = PipelineApp.Build(args.FirstOrDefault() == "run" ? args[1..] : args);
await app.StartAsync();
app.Logger.LogInformation("Pipeline running: admin API and Swagger UI at {Urls}/swagger, state in {DataDirectory}",
    string.Join(", ", app.Urls), app.Configuration["Pipeline:DataDirectory"] ?? "./data");
await SampleRuns.PublishAsync(app, app.Lifetime.ApplicationStopping);
await app.WaitForShutdownAsync();
return 0;
