using System.Text.Json;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Audit;
using Pipeline.Production.Hosting;

namespace Pipeline.Host;

/// <summary>
/// `pipeline audit CAMPAIGN [--events]`: the audit of one campaign (<see cref="CampaignAudit"/>, the API's and the
/// demo's) against the configured store and areas (appsettings.json, PIPELINE__… environment variables or
/// --Pipeline:…=… arguments, as for the pipeline itself), printed as JSON; --events reads every byte too. Exits 0 when
/// the campaign is complete: every raw file archived, each exactly once in every dataset that selects it.
/// </summary>
public static class AuditCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith("--", StringComparison.Ordinal))
        {
            await Console.Error.WriteLineAsync("usage: pipeline audit CAMPAIGN [--events] [--Pipeline:DataDirectory=DIR | --Pipeline:Store=Mongo ...]");
            return 2;
        }
        var events = args[1..].Contains("--events");
        var (configuration, options) = ToolConfiguration.Load([.. args[1..].Where(a => a != "--events")]);
        var services = new ServiceCollection();
        services.AddLogging(logging => logging.AddFilter("Microsoft", LogLevel.Warning).AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace));
        PipelineHosting.AddStorageAndState(services, configuration, options);
        services.AddCampaignAudit();
        await using var provider = services.BuildServiceProvider();
        var report = await provider.GetRequiredService<CampaignAudit>().RunAsync(args[0], events, CancellationToken.None);
        Console.WriteLine(JsonSerializer.Serialize(report, new JsonSerializerOptions(JsonSerializerDefaults.Web)));
        if (!report.Complete)
        {
            await Console.Error.WriteLineAsync($"audit: campaign {args[0]} is not complete: {report.ArchivedRawFiles} of {report.RawFiles} raw files archived, "
                + $"{report.Missing.Count} outputs missing, {report.Doubled.Count} doubled, {report.Unexpected.Count} unexpected, {report.ManifestProblems.Count} manifest problems");
        }
        return report.Complete ? 0 : 1;
    }
}

/// <summary>The configuration a command-line tool reads: as for the pipeline itself (appsettings.json, PIPELINE__… variables, --Pipeline:…=… arguments).</summary>
public static class ToolConfiguration
{
    public static (IConfiguration Configuration, PipelineOptions Options) Load(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();
        return (configuration, configuration.GetSection(PipelineOptions.Section).Get<PipelineOptions>() ?? new PipelineOptions());
    }
}
