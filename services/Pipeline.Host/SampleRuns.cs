using System.Globalization;
using MassTransit;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;

namespace Pipeline.Host;

/// <summary>
/// `SAMPLE_RUNS=N make run`: once the pipeline is up, generate N new sample runs (numbered after the
/// highest run registered so far) into the archive and announce them, as the detector would.
/// </summary>
public static class SampleRuns
{
    public static SampleSpec SpecFrom(IConfiguration configuration, int runs, int firstRun) => new(
        Runs: runs,
        FirstRun: firstRun,
        FilesPerStream: Setting(configuration, "SAMPLE_FILES", 4),
        EventsPerFile: Setting(configuration, "SAMPLE_EVENTS", 500),
        Seed: firstRun);

    public static int Setting(IConfiguration configuration, string key, int fallback) =>
        int.TryParse(configuration[key], NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) && value > 0 ? value : fallback;

    public static async Task PublishAsync(WebApplication app, CancellationToken cancellationToken)
    {
        var count = Setting(app.Configuration, "SAMPLE_RUNS", 0);
        if (count == 0)
        {
            return;
        }
        var registry = app.Services.GetRequiredService<IRunRegistry>();
        var known = await registry.ListRunsAsync(cancellationToken);
        var firstRun = known.Count > 0 ? known.Max(r => r.Run) + 1 : 1000;
        var areas = app.Services.GetRequiredService<StorageAreas>();
        var runs = await SampleGenerator.GenerateAsync((name, body, token) => areas.Archive.WriteAsync(name, body, token),
            SpecFrom(app.Configuration, count, firstRun), cancellationToken);
        var ingestion = app.Services.GetRequiredService<RunIngestion>();
        var bus = app.Services.GetRequiredService<IBus>();
        foreach (var run in runs)
        {
            await ingestion.IngestAsync(run, bus, cancellationToken);
        }
        app.Logger.LogInformation("Published {Count} sample runs starting at run {FirstRun}", runs.Count, firstRun);
    }
}
