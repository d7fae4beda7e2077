using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Pipeline.Api.Security;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Control;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>A worker stage and whether operators have paused it.</summary>
public sealed record StageControl(string Stage, bool Paused, string? By, DateTimeOffset? Since);

public sealed record ProductionSummary(
    IReadOnlyList<StateCount> States,
    IReadOnlyDictionary<string, long> Totals,
    int Runs,
    int MergedFiles,
    long MergedBytes,
    long MergedEvents,
    IReadOnlyList<FailureRow> Failures,
    IReadOnlyList<StageThroughput> Stages,
    IReadOnlyList<StageUtilisation> Utilisation);

/// <summary>
/// Who holds a singleton's lease and until when; <paramref name="Held"/> is false once it ran out (its holder gone, and
/// no other instance has asked yet).
/// </summary>
public sealed record SingletonHolder(string Name, string Holder, long Token, DateTimeOffset ExpiresAt, bool Held);

/// <summary>Slots of a stage in use across the live instances (heard within three heartbeats): reconstruction slots, archive writers.</summary>
public sealed record StageUtilisation(string Stage, int Busy, int Capacity, int Instances);

/// <summary>What a stage finished in the current clock hour and in the last 24 hours, across every instance.</summary>
public sealed record StageThroughput(string Stage, long FilesThisHour, long BytesThisHour, long FilesLast24Hours, long BytesLast24Hours);

public sealed record DatasetSummary(string Campaign, string Dataset, int MergedFiles, long Bytes, long Events);

public static class PipelineEndpoints
{
    public static IEndpointRouteBuilder MapPipelineEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var (api, act) = endpoints.MapApiGroups("/api", "Production");

        api.MapGet("/throughput", Throughput)
            .WithName("GetThroughput").WithSummary("Files and bytes each stage finished for each campaign per minute (kept 6 hours) or per hour (kept 35 days), over the last hours (default 24, or 6 per minute), optionally for one campaign or stage")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        api.MapGet("/alerts", Alerts)
            .WithName("ListAlerts").WithSummary("Alerts of the health watcher, newest first: the active ones, or all with ?all=true")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        api.MapGet("/instances", async (IHealthStore health, CancellationToken ct) => TypedResults.Ok(await health.ListInstancesAsync(ct)))
            .WithName("ListInstances").WithSummary("Every service instance that has sent a heartbeat, with the stages it hosts and when it was last heard");
        api.MapGet("/singletons", async (ISingletonLeaseStore leases, TimeProvider time, CancellationToken ct) =>
                TypedResults.Ok((await leases.ListAsync(ct)).Select(l => new SingletonHolder(l.Name, l.Holder, l.Token, l.ExpiresAt, l.ExpiresAt > time.GetUtcNow()))))
            .WithName("ListSingletons")
            .WithSummary("The work that runs on one instance at a time (dispatcher, feeder, sweeps): who holds each lease, its fencing token, until when");
        api.MapGet("/stages", Stages)
            .WithName("ListStages").WithSummary("The worker stages and which of them are paused");
        act.MapPost("/stages/{stage}/pause", PauseStage)
            .WithName("PauseStage")
            .WithSummary("Pause a stage everywhere: its instances hold back its messages (durable in the broker) until it is resumed")
            .WithDescription("Takes effect within a second or so on every instance. Work already running finishes. Pausing a paused stage changes nothing.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPost("/stages/{stage}/drain", PauseStage)
            .WithName("DrainStage")
            .WithSummary("Drain a stage: work in flight finishes, nothing new is taken (a pause); resume it to take work again")
            .WithDescription("Busy slots per stage are in /api/summary (utilisation): the stage is drained when they reach 0.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPost("/stages/{stage}/resume", ResumeStage)
            .WithName("ResumeStage").WithSummary("Resume a paused stage; resuming a running stage changes nothing")
            .ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/summary", Summary)
            .WithName("GetSummary").WithSummary("Counts of files per campaign and state, and what the archive holds");
        api.MapGet("/datasets", Datasets)
            .WithName("ListDatasets").WithSummary("Merged files archived per dataset, with bytes and events");
        api.MapGet("/catalog", FindInCatalog)
            .WithName("FindInCatalog").WithSummary("Every catalogued copy of a logical file name, with area, size and adler32")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);
        return endpoints;
    }

    internal static string Holder(HttpContext http) => http.User.Identity?.Name ?? "api";

    private static async Task<Ok<IReadOnlyList<StageControl>>> Stages(IControlStore control, CancellationToken ct)
    {
        var paused = (await control.ListPausedAsync(ct)).ToDictionary(p => p.Stage, StringComparer.Ordinal);
        IReadOnlyList<StageControl> stages = [.. PauseState.Stages.Select(s =>
            paused.TryGetValue(s, out var p) ? new StageControl(s, true, p.By, p.Since) : new StageControl(s, false, null, null))];
        return TypedResults.Ok(stages);
    }

    private static ProblemHttpResult? UnknownStage(string stage) =>
        PauseState.Stages.Contains(stage) ? null : NotFound($"No stage '{stage}'; the stages are {string.Join(", ", PauseState.Stages)}.");

    /// <summary>Pauses a target (a stage, or a campaign's target) and answers with the pause that stands: the first one.</summary>
    internal static async Task<PausedStage> PauseAsync(string target, IControlStore control, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        await control.PauseAsync(target, Holder(http), time.GetUtcNow(), ct);
        return (await control.ListPausedAsync(ct)).Single(p => p.Stage == target);
    }

    private static async Task<Results<Accepted<StageControl>, ProblemHttpResult>> PauseStage(
        string stage, IControlStore control, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        if (UnknownStage(stage) is { } problem)
        {
            return problem;
        }
        var paused = await PauseAsync(stage, control, time, http, ct);
        return TypedResults.Accepted("/api/stages", new StageControl(stage, true, paused.By, paused.Since));
    }

    private static async Task<Results<Accepted<StageControl>, ProblemHttpResult>> ResumeStage(string stage, IControlStore control, CancellationToken ct)
    {
        if (UnknownStage(stage) is { } problem)
        {
            return problem;
        }
        await control.ResumeAsync(stage, ct);
        return TypedResults.Accepted("/api/stages", new StageControl(stage, false, null, null));
    }

    private static async Task<Results<Ok<IReadOnlyList<AlertRecord>>, ProblemHttpResult>> Alerts(IHealthStore health, bool? all, int? limit, CancellationToken ct)
    {
        if (limit is < 1 or > 1000)
        {
            return TypedResults.Problem("limit must be between 1 and 1000.", statusCode: StatusCodes.Status400BadRequest, title: "Bad limit");
        }
        return TypedResults.Ok(await health.ListAlertsAsync(activeOnly: all != true, limit ?? 100, ct));
    }

    private static async Task<Results<Ok<IReadOnlyList<StageActivity>>, ProblemHttpResult>> Throughput(
        IActivityLog activity, TimeProvider time, string? resolution, int? hours, string? campaign, string? stage, CancellationToken ct)
    {
        if (!Enum.TryParse<ThroughputResolution>(resolution ?? nameof(ThroughputResolution.Hour), ignoreCase: true, out var step) || !Enum.IsDefined(step))
        {
            return TypedResults.Problem("resolution must be minute or hour.", statusCode: StatusCodes.Status400BadRequest, title: "Bad resolution");
        }
        var kept = (int)ThroughputWindow.Kept(step).TotalHours;
        if (hours is { } h && (h < 1 || h > kept))
        {
            return TypedResults.Problem($"hours must be between 1 and {kept}: {step.ToString().ToLowerInvariant()} buckets are kept for {kept} hours.",
                statusCode: StatusCodes.Status400BadRequest, title: "Bad time range");
        }
        var now = time.GetUtcNow();
        var since = now - TimeSpan.FromHours(hours ?? Math.Min(kept, 24)) + ThroughputWindow.Step(step);
        return TypedResults.Ok<IReadOnlyList<StageActivity>>([.. (await activity.ListActivityAsync(step, since, ct))
            .Where(a => (campaign is null || a.Campaign == campaign) && (stage is null || a.Stage == stage))]);
    }

    private static async Task<IReadOnlyList<StageThroughput>> StageTotals(IActivityLog activity, TimeProvider time, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        var lastHour = ThroughputWindow.BucketOf(ThroughputResolution.Hour, now);
        var day = await activity.ListActivityAsync(ThroughputResolution.Hour, now.AddHours(-23), ct);
        return [.. day.GroupBy(a => a.Stage, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new StageThroughput(g.Key,
                g.Where(a => a.At == lastHour).Sum(a => a.Files), g.Where(a => a.At == lastHour).Sum(a => a.Bytes),
                g.Sum(a => a.Files), g.Sum(a => a.Bytes)))];
    }

    private static async Task<IReadOnlyList<StageUtilisation>> Utilisation(IHealthStore health, PipelineOptions pipeline, TimeProvider time, CancellationToken ct)
    {
        var liveSince = time.GetUtcNow().AddSeconds(-3 * pipeline.HeartbeatSeconds);
        return [.. (await health.ListInstancesAsync(ct))
            .Where(i => i.LastSeenAt >= liveSince)
            .SelectMany(i => i.Load)
            .GroupBy(l => l.Stage, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new StageUtilisation(g.Key, g.Sum(l => l.Busy), g.Sum(l => l.Capacity), g.Count()))];
    }

    private static async Task<Ok<ProductionSummary>> Summary(
        IFileSagaStore store, IRunRegistry runs, ICatalog catalog, IActivityLog activity, IHealthStore health, IOptions<PipelineOptions> pipeline, TimeProvider time, CancellationToken ct)
    {
        var states = await store.CountByStateAsync(ct);
        // A file kept in several archive areas is one file of its dataset.
        var merged = (await catalog.ListAsync(CatalogEntry.Merged, null, ct)).DistinctBy(m => m.Name).ToList();
        var totals = states.GroupBy(s => s.State, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(s => s.Files), StringComparer.Ordinal);
        return TypedResults.Ok(new ProductionSummary(states, totals, (await runs.ListRunsAsync(ct)).Count,
            merged.Count, merged.Sum(m => m.Size), merged.Sum(m => m.Events), await FileEndpoints.FailureRows(store, null, ct), await StageTotals(activity, time, ct),
            await Utilisation(health, pipeline.Value, time, ct)));
    }

    private static async Task<Ok<IReadOnlyList<DatasetSummary>>> Datasets(ICatalog catalog, string? campaign, CancellationToken ct)
    {
        var merged = (await catalog.ListAsync(CatalogEntry.Merged, campaign, ct)).DistinctBy(m => m.Name).ToList();
        IReadOnlyList<DatasetSummary> datasets = [.. merged
            .GroupBy(m => (m.Campaign ?? "", m.Dataset ?? ""))
            .Select(g => new DatasetSummary(g.Key.Item1, g.Key.Item2, g.Count(), g.Sum(m => m.Size), g.Sum(m => m.Events)))];
        return TypedResults.Ok(datasets);
    }

    private static async Task<Results<Ok<IReadOnlyList<CatalogEntry>>, ProblemHttpResult>> FindInCatalog(string? name, ICatalog catalog, CancellationToken ct)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return TypedResults.Problem("Give the logical file name as ?name=.", statusCode: StatusCodes.Status400BadRequest, title: "Name required");
        }
        var entries = await catalog.FindAsync(name, ct);
        return entries.Count > 0 ? TypedResults.Ok(entries) : NotFound($"Nothing catalogued under '{name}'.");
    }

    /// <summary>
    /// The groups every part of the admin API maps into: reading needs a viewer's key (or better), acting
    /// (anything that changes production) an operator's.
    /// </summary>
    internal static (RouteGroupBuilder Read, RouteGroupBuilder Act) MapApiGroups(this IEndpointRouteBuilder endpoints, string prefix, string tag)
    {
        var read = endpoints.MapGroup(prefix).WithTags(tag)
            .RequireAuthorization(ApiPolicies.Read)
            .ProducesProblem(StatusCodes.Status401Unauthorized);
        var act = read.MapGroup("")
            .RequireAuthorization(ApiPolicies.Act)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        return (read, act);
    }

    internal static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found");
}
