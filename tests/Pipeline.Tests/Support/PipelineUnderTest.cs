using System.Globalization;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Pipeline.Contracts;
using Pipeline.Host;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;

namespace Pipeline.Tests.Support;

/// <summary>
/// The all-in-one pipeline started inside the test, on a folder of its own, with timings shortened
/// so that flushes and watchdog sweeps happen within a test's patience. Nothing else is faked.
/// </summary>
public sealed class PipelineUnderTest : IAsyncDisposable
{
    private readonly TempDirectory _directory;
    private readonly WebApplication _app;

    private PipelineUnderTest(WebApplication app, TempDirectory directory)
    {
        _app = app;
        _directory = directory;
    }

    public IServiceProvider Services => _app.Services;

    /// <summary>A client that sends the operator key: may read and act.</summary>
    public HttpClient Http { get; private set; } = null!;

    public const string ViewerKey = "viewer-key-for-tests-0123456789";
    public const string OperatorKey = "operator-key-for-tests-0123456789";

    /// <summary>A client that sends the given key, or none.</summary>
    public HttpClient Client(string? apiKey)
    {
        var client = new HttpClient { BaseAddress = Http.BaseAddress };
        if (apiKey is not null)
        {
            client.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        }
        return client;
    }

    public string DataDirectory => _directory.Path;

    public StorageAreas Areas => Services.GetRequiredService<StorageAreas>();

    public IFileSagaStore Sagas => Services.GetRequiredService<IFileSagaStore>();

    public CampaignOptions Campaign => Services.GetRequiredService<IOptions<CampaignOptions>>().Value;

    /// <summary>
    /// Settings under which every file fails: the release fails each first attempt the same way, and the campaign
    /// allows one. A retry with one extra attempt then succeeds.
    /// </summary>
    public static Dictionary<string, string?> EveryFileFailsItsOneAttempt()
    {
        string[] arguments = ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}", "--attempt", "{attempt}", "--fail-attempts", "1"];
        var settings = arguments.Select((a, i) => KeyValuePair.Create($"Pipeline:Campaign:Release:Arguments:{i}", (string?)a)).ToDictionary();
        settings["Pipeline:Campaign:MaxAttempts"] = "1";
        return settings;
    }

    public static async Task<PipelineUnderTest> StartAsync(Uri? rabbitMq = null, IReadOnlyDictionary<string, string?>? settings = null, Action<IServiceCollection>? overrideServices = null)
    {
        var directory = new TempDirectory();
        var all = new Dictionary<string, string?>
        {
            ["urls"] = "http://127.0.0.1:0",
            ["Pipeline:DataDirectory"] = directory.Path,
            ["Pipeline:Transport"] = rabbitMq is null ? "InMemory" : "RabbitMq",
            ["Pipeline:RabbitMq:Uri"] = rabbitMq?.ToString(),
            ["Pipeline:Campaign:MergeTargetBytes"] = (1L << 20).ToString(CultureInfo.InvariantCulture),
            ["Pipeline:Merger:FlushIdleSeconds"] = "0.5",
            ["Pipeline:Merger:PollSeconds"] = "0.1",
            ["Pipeline:Orchestrator:WatchdogIntervalSeconds"] = "1",
            ["Pipeline:Reconstruction:Slots"] = "2",
            ["Serilog:MinimumLevel:Default"] = "Warning",
            ["Pipeline:Api:Keys:test-viewer:Key"] = ViewerKey,
            ["Pipeline:Api:Keys:test-viewer:Role"] = "viewer",
            ["Pipeline:Api:Keys:test-operator:Key"] = OperatorKey,
            ["Pipeline:Api:Keys:test-operator:Role"] = "operator",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            // A null setting takes the default away.
            if (value is null)
            {
                all.Remove(key);
            }
            else
            {
                all[key] = value;
            }
        }
        var app = PipelineApp.Build([], all, overrideServices);
        var pipeline = new PipelineUnderTest(app, directory);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        pipeline.Http = new HttpClient { BaseAddress = new Uri(address) };
        pipeline.Http.DefaultRequestHeaders.Add("X-Api-Key", OperatorKey);
        return pipeline;
    }

    /// <summary>Writes sample raw files into the archive (a folder or a storage server) and returns their run announcements (not yet published).</summary>
    public Task<IReadOnlyList<RunRecorded>> GenerateAsync(SampleSpec spec) =>
        SampleGenerator.GenerateAsync((name, body, token) => Areas.Archive.WriteAsync(name, body, token), spec);

    public async Task IngestAsync(IEnumerable<RunRecorded> runs)
    {
        var ingestion = Services.GetRequiredService<RunIngestion>();
        var bus = Services.GetRequiredService<IBus>();
        foreach (var run in runs)
        {
            await ingestion.IngestAsync(run, bus, CancellationToken.None);
        }
    }

    public async Task<IReadOnlyList<StateCount>> WaitForFinalAsync(int files, TimeSpan? limit = null) =>
        await Eventually.Until(
            () => Sagas.CountByStateAsync(CancellationToken.None),
            counts => counts.Where(c => FileStates.Final.Contains(c.State)).Sum(c => c.Files) >= files,
            limit ?? TimeSpan.FromMinutes(3),
            $"{files} files to reach a final state",
            counts => string.Join(", ", counts.Select(c => $"{c.State}={c.Files}")));

    /// <summary>
    /// The campaign's audit with its events read (the pipeline's own <see cref="CampaignAudit"/>); every raw file the runs
    /// announced must have its record, so that a file never registered cannot pass unseen.
    /// </summary>
    public Task<CampaignAuditReport> AuditAsync(IReadOnlyList<RunRecorded> runs, string campaign, IReadOnlyDictionary<string, uint> datasets) =>
        AuditOf(runs, campaign, Services.GetRequiredService<CampaignAudit>());

    public Task<CampaignAuditReport> AuditAsync(IReadOnlyList<RunRecorded> runs) => AuditOf(runs, Campaign.Name, Services.GetRequiredService<CampaignAudit>());

    public static async Task<CampaignAuditReport> AuditOf(IReadOnlyList<RunRecorded> runs, string campaign, CampaignAudit audit)
    {
        var report = await audit.RunAsync(campaign, readEvents: true, CancellationToken.None);
        Assert.Equal(runs.Sum(r => r.Files!.Count), report.RawFiles);
        return report;
    }

    public async Task<IReadOnlyList<FileState>> AllFilesAsync()
    {
        var files = new List<FileState>();
        string? after = null;
        do
        {
            var page = await Sagas.ListAsync(new FileQuery(After: after, Limit: 1000), CancellationToken.None);
            foreach (var summary in page.Files)
            {
                files.Add((await Sagas.LoadAsync(summary.Id, CancellationToken.None))!);
            }
            after = page.Next;
        }
        while (after is not null);
        return files;
    }

    public async ValueTask DisposeAsync()
    {
        Http?.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        _directory.Dispose();
    }
}
