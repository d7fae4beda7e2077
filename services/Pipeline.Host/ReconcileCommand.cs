using System.Text.Json;
using Pipeline.Production.Audit;
using Pipeline.Production.Hosting;

namespace Pipeline.Host;

/// <summary>
/// `pipeline reconcile [--dry-run] [--verify] [--dark-after-minutes=N]`: the reconciliation sweep of the catalog against
/// the archive areas, on the configured store and areas, printed as JSON. Exits 0 when the sweep found nothing wrong.
/// </summary>
public static class ReconcileCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var flags = args.Where(a => !a.StartsWith("--Pipeline:", StringComparison.OrdinalIgnoreCase)).ToList();
        var darkAfter = ReconciliationOptions.DefaultDarkAfter;
        foreach (var flag in flags)
        {
            if (flag.StartsWith("--dark-after-minutes=", StringComparison.Ordinal)
                && double.TryParse(flag["--dark-after-minutes=".Length..], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var minutes)
                && minutes >= 0 && minutes <= ReconciliationOptions.MaxDarkAfterMinutes)
            {
                darkAfter = TimeSpan.FromMinutes(minutes);
            }
            else if (flag is not "--dry-run" and not "--verify")
            {
                await Console.Error.WriteLineAsync("usage: pipeline reconcile [--dry-run] [--verify] [--dark-after-minutes=N] [--Pipeline:DataDirectory=DIR | --Pipeline:Store=Mongo ...]");
                return 2;
            }
        }
        var (configuration, options) = ToolConfiguration.Load([.. args.Except(flags)]);
        var services = new ServiceCollection();
        // Logs go to stderr: stdout carries the report alone.
        services.AddLogging(logging => logging.AddFilter("Microsoft", LogLevel.Warning)
            .AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace));
        PipelineHosting.AddStorageAndState(services, configuration, options);
        // A tool has no bus to the monitor: what it finds is in its report, and the archiver's next sweep, which checks
        // every copy marked bad again, raises the alerts.
        services.AddSingleton<IAlerts, ReportedAlerts>();
        services.AddReconciliation(configuration);
        await using var provider = services.BuildServiceProvider();
        ReconciliationReport report;
        try
        {
            // Under the same lease as the archiver's periodic sweep: the two never move the same files at once.
            report = await provider.GetRequiredService<Reconciler>()
                .RunExclusiveAsync(new ReconciliationOptions(flags.Contains("--verify"), darkAfter, flags.Contains("--dry-run")), CancellationToken.None);
        }
        catch (ReconciliationBusyException busy)
        {
            await Console.Error.WriteLineAsync($"reconcile: {busy.Message}");
            return 3;
        }
        Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions(JsonSerializerDefaults.Web)));
        return report.Clean ? 0 : 1;
    }
}

/// <summary>Alerts of a tool without a bus: logged, left for the stages' own sweeps to raise.</summary>
internal sealed class ReportedAlerts(ILogger<ReportedAlerts> logger) : IAlerts
{
    public Task RaiseAsync(string key, string kind, string severity, string message, CancellationToken cancellationToken)
    {
        logger.LogWarning("{Severity} {Kind}: {Message}", severity, kind, message);
        return Task.CompletedTask;
    }

    public Task ResolveAsync(string key, CancellationToken cancellationToken) => Task.CompletedTask;
}
