using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Audit;

namespace Pipeline.Archiver;

public sealed class ReconciliationSettings
{
    public const string Section = "Pipeline:Reconciliation";

    /// <summary>Minutes between sweeps of the catalog against the archive areas; 0 turns the periodic sweep off.</summary>
    [Range(0, 525_600)]
    public double IntervalMinutes { get; set; } = 360;

    /// <summary>Re-read every archived byte and compare checksums (a full read of the archive) rather than sizes only.</summary>
    public bool VerifyChecksums { get; set; }

    /// <summary>How old a file the catalog lacks must be before it counts as dark (younger ones may be writes in flight).</summary>
    [Range(0, 525_600)]
    public double DarkAfterMinutes { get; set; } = 60;

    public ReconciliationOptions ToOptions(bool dryRun = false) =>
        new(VerifyChecksums, TimeSpan.FromMinutes(DarkAfterMinutes), dryRun);
}

/// <summary>
/// Runs the reconciliation sweep every <see cref="ReconciliationSettings.IntervalMinutes"/>, in the service that
/// owns the archive areas. What it finds is raised as alerts (one per bad or dark file) and logged.
/// </summary>
public sealed class ReconciliationService(Reconciler reconciler, IOptions<ReconciliationSettings> options, TimeProvider time, ILogger<ReconciliationService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (options.Value.IntervalMinutes <= 0)
        {
            return;
        }
        using var timer = new PeriodicTimer(TimeSpan.FromMinutes(options.Value.IntervalMinutes), time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await reconciler.RunAsync(options.Value.ToOptions(), stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                logger.LogWarning(ex, "Reconciliation sweep failed; the next one runs in {Minutes} min", options.Value.IntervalMinutes);
            }
        }
    }
}
