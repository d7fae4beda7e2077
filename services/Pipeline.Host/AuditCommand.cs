using System.Text.Json;
using Pipeline.Api;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Audit;
using Pipeline.Production.State;

namespace Pipeline.Host;

/// <summary>
/// `pipeline audit CAMPAIGN`: the catalog audit of one campaign against the configured store (appsettings.json,
/// PIPELINE__… environment variables or --Pipeline:…=… arguments, as for the pipeline itself), printed as JSON.
/// Exits 0 when the campaign is complete: every raw file archived, each exactly once in every dataset that selects it.
/// </summary>
public static class AuditCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length == 0 || args[0].StartsWith("--", StringComparison.Ordinal))
        {
            await Console.Error.WriteLineAsync("usage: pipeline audit CAMPAIGN [--Pipeline:DataDirectory=DIR | --Pipeline:Store=Mongo ...]");
            return 2;
        }
        var (_, options) = ToolConfiguration.Load(args[1..]);
        using var stores = StoreBackend.Open(options);
        var report = await CatalogAudit.RunAsync(args[0], stores.Sagas, stores.Catalog, CancellationToken.None);
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
