using System.Text.Json;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Flow;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>One bounded area: its bounds (configured, or set by an operator) and what its ledger says it holds.</summary>
public sealed record AreaStatus(
    string Area, long QuotaBytes, long HighWaterBytes, long LowWaterBytes, long UsedBytes, long Files, bool Blocked,
    long PeakBytes, long LargestFileBytes, string? SetBy, DateTimeOffset? SetAt);

public sealed record MoverStatus(int Limit, int InUse, IReadOnlyList<MoverLease> Leases);

/// <summary>How one campaign's dataset is merged and archived, as in force now.</summary>
public sealed record DatasetPolicy(string Dataset, string Ordering, IReadOnlyList<string> Copies, string Campaign);

public sealed record FlowStatus(IReadOnlyList<AreaStatus> Areas, MoverStatus Movers, IReadOnlyList<DatasetPolicy> Datasets);

/// <summary>New bounds for an area: a quota in bytes (0 for unbounded) and the high- and low-water marks as fractions of it.</summary>
/// <summary>An area's bounds; the quota must be given (DELETE takes a setting away, back to the configuration's).</summary>
public sealed record AreaQuotaRequest(long? QuotaBytes, double HighWater = 0.9, double LowWater = 0.7);

public sealed record MoversRequest(int Limit);

/// <summary>"strict" or "relaxed".</summary>
public sealed record OrderingRequest(string Ordering);

public static class FlowEndpoints
{
    /// <summary>
    /// The areas a stage fills, whose bounds hold that stage back: cache (stager), scratch and unmerged (reconstruction:
    /// its jobs' folders, then its outputs until they are merged and archived), output (merger).
    /// </summary>
    public static readonly IReadOnlyList<string> BoundedAreas = [StorageOptions.Cache, StorageOptions.Scratch, StorageOptions.Unmerged, StorageOptions.Output];

    public static IEndpointRouteBuilder MapFlowEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var (api, act) = endpoints.MapApiGroups("/api/flow", "Flow control");

        api.MapGet("", GetFlow)
            .WithName("GetFlow")
            .WithSummary("Quotas and usage of the bounded areas, the movers (archive writers) in use, and each dataset's merge ordering and archive copies");
        act.MapPut("/areas/{area}", SetAreaQuota)
            .WithName("SetAreaQuota")
            .WithSummary("Bound an area (cache, scratch or output) in bytes, with high- and low-water marks as fractions of the quota")
            .WithDescription("Above the high-water mark the stage that fills the area takes no new work until it is back at the low-water mark; its messages wait in the broker. A quota of 0 removes the bound. Takes effect within a second on every instance.")
            .Accepts<AreaQuotaRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapDelete("/areas/{area}", ResetAreaQuota)
            .WithName("ResetAreaQuota").WithSummary("Forget an operator's bounds for an area: the configured ones apply again")
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPut("/movers", SetMovers)
            .WithName("SetMovers")
            .WithSummary("Set how many archive writers may run at once across every archiver instance")
            .Accepts<MoversRequest>("application/json")
            .ProducesValidationProblem();
        act.MapPut("/datasets/{dataset}", SetOrdering)
            .WithName("SetDatasetOrdering")
            .WithSummary("Set a dataset's merge ordering: strict (a merged file holds only runs whose every file is reconstructed) or relaxed (merge whatever is ready)")
            .Accepts<OrderingRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        var (_, storage) = endpoints.MapApiGroups("/api", "Storage");
        storage.MapPost("/reconciliation", Reconcile)
            .WithName("Reconcile")
            .WithSummary("Sweep the catalog against the archive areas now: a catalogued copy missing or wrong is marked bad and restored from another sound copy when one exists; a file the catalog lacks is moved into the area's .quarantine folder, never deleted. dryRun=true reports only; verify=true re-reads every byte; with Accept: application/x-ndjson the answer streams progress lines, then the report")
            .Produces<ReconciliationReport>()
            .Produces(StatusCodes.Status200OK, contentType: ProgressStream.MediaType)
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict);
        return endpoints;
    }

    private static async Task<IResult> Reconcile(
        Reconciler reconciler, HttpContext http, CancellationToken ct, bool dryRun = false, bool verify = false, double darkAfterMinutes = 60)
    {
        if (!double.IsFinite(darkAfterMinutes) || darkAfterMinutes < 0 || darkAfterMinutes > ReconciliationOptions.MaxDarkAfterMinutes)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["darkAfterMinutes"] = [$"must be between 0 and {ReconciliationOptions.MaxDarkAfterMinutes}"] });
        }
        var options = new ReconciliationOptions(verify, TimeSpan.FromMinutes(darkAfterMinutes), dryRun);
        if (ProgressStream.Wanted(http.Request))
        {
            return ProgressStream.Of((progress, token) => reconciler.RunExclusiveAsync(options, token, progress));
        }
        try
        {
            return TypedResults.Ok(await reconciler.RunExclusiveAsync(options, ct));
        }
        catch (ReconciliationBusyException busy)
        {
            return TypedResults.Problem(busy.Message, statusCode: StatusCodes.Status409Conflict, title: "A reconciliation sweep is running");
        }
    }

    private static async Task<Ok<FlowStatus>> GetFlow(IFlowStore store, FlowControl flow, CampaignDirectory campaigns, TimeProvider time, CancellationToken ct) =>
        TypedResults.Ok(await StatusAsync(store, flow, campaigns, time, ct));

    private static async Task<FlowStatus> StatusAsync(IFlowStore store, FlowControl flow, CampaignDirectory campaigns, TimeProvider time, CancellationToken ct)
    {
        var usage = (await store.ListAreaUsageAsync(ct)).ToDictionary(u => u.Area, StringComparer.Ordinal);
        var settings = (await store.ListSettingsAsync(ct)).ToDictionary(s => s.Key, StringComparer.Ordinal);
        // Read from the store, not from this process's last refresh: an operator sees a change at once.
        var current = new FlowControl(Options.Create(flow.Configured));
        current.Apply([.. settings.Values], [.. usage.Values]);
        var areas = BoundedAreas.Select(area =>
        {
            var limits = current.LimitsOf(area);
            var used = usage.GetValueOrDefault(area) ?? new AreaUsage(area, 0, 0, false, 0, 0);
            var set = settings.GetValueOrDefault(FlowControl.AreaKey(area));
            return new AreaStatus(area, limits.QuotaBytes, limits.Bounded ? limits.HighWaterBytes : 0, limits.Bounded ? limits.LowWaterBytes : 0,
                used.Bytes, used.Files, used.Blocked, used.PeakBytes, used.LargestFileBytes, set?.By, set?.At);
        }).ToList();
        var leases = await store.ListMoversAsync(time.GetUtcNow(), ct);
        var datasets = (await campaigns.ListAsync(ct)).SelectMany(c => c.Definition.Selections.Select(d => new DatasetPolicy(d.Name,
            current.OrderingOf(d.Name, c.Definition.Ordering).ToString().ToLowerInvariant(), current.CopiesOf(d.Name, c.Definition.Copies), c.Name))).ToList();
        return new FlowStatus(areas, new MoverStatus(current.MoversLimit, leases.Count, leases), datasets);
    }

    private static FlowSetting Setting(string key, object value, HttpContext http, TimeProvider time) =>
        new(key, JsonSerializer.Serialize(value, FlowControl.Json), http.User.Identity?.Name ?? "api", time.GetUtcNow());

    private static async Task<Results<Accepted<FlowStatus>, ValidationProblem, ProblemHttpResult>> SetAreaQuota(
        string area, AreaQuotaRequest request, IFlowStore store, FlowControl flow, CampaignDirectory campaigns, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        if (!BoundedAreas.Contains(area))
        {
            return NotBounded(area);
        }
        if (request.QuotaBytes is not { } quotaBytes)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["quotaBytes"] = ["is required (0 for no quota); DELETE removes the setting"] },
                title: "The bounds are not valid; nothing changed.");
        }
        var quota = new AreaQuotaOptions { QuotaBytes = quotaBytes, HighWater = request.HighWater, LowWater = request.LowWater };
        if (quota.Problem() is { } problem)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["quota"] = [problem] }, title: "The bounds are not valid; nothing changed.");
        }
        await store.SetSettingAsync(Setting(FlowControl.AreaKey(area), quota, http, time), ct);
        return TypedResults.Accepted("/api/flow", await StatusAsync(store, flow, campaigns, time, ct));
    }

    private static async Task<Results<Accepted<FlowStatus>, ProblemHttpResult>> ResetAreaQuota(
        string area, IFlowStore store, FlowControl flow, CampaignDirectory campaigns, TimeProvider time, CancellationToken ct)
    {
        if (!BoundedAreas.Contains(area))
        {
            return NotBounded(area);
        }
        await store.RemoveSettingAsync(FlowControl.AreaKey(area), ct);
        return TypedResults.Accepted("/api/flow", await StatusAsync(store, flow, campaigns, time, ct));
    }

    private static async Task<Results<Accepted<FlowStatus>, ValidationProblem>> SetMovers(
        MoversRequest request, IFlowStore store, FlowControl flow, CampaignDirectory campaigns, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        if (request.Limit is < 1 or > 256)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = ["must be between 1 and 256"] }, title: "The limit is not valid; nothing changed.");
        }
        await store.SetSettingAsync(Setting(FlowControl.MoversKey, request.Limit, http, time), ct);
        return TypedResults.Accepted("/api/flow", await StatusAsync(store, flow, campaigns, time, ct));
    }

    private static async Task<Results<Accepted<FlowStatus>, ValidationProblem, ProblemHttpResult>> SetOrdering(
        string dataset, OrderingRequest request, IFlowStore store, FlowControl flow, CampaignDirectory campaigns, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        var known = (await campaigns.ListAsync(ct)).SelectMany(c => c.Definition.Selections.Select(s => s.Name)).Distinct().Order(StringComparer.Ordinal).ToList();
        if (!known.Contains(dataset))
        {
            return PipelineEndpoints.NotFound($"No dataset '{dataset}'; the datasets are {string.Join(", ", known)}.");
        }
        if (!Enum.TryParse<MergeOrdering>(request.Ordering, ignoreCase: true, out var ordering) || !Enum.IsDefined(ordering) || int.TryParse(request.Ordering, out _))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["ordering"] = ["must be \"strict\" or \"relaxed\""] }, title: "The ordering is not valid; nothing changed.");
        }
        await store.SetSettingAsync(Setting(FlowControl.OrderingKey(dataset), ordering, http, time), ct);
        return TypedResults.Accepted("/api/flow", await StatusAsync(store, flow, campaigns, time, ct));
    }

    private static ProblemHttpResult NotBounded(string area) =>
        PipelineEndpoints.NotFound($"Area '{area}' cannot be bounded; the bounded areas are {string.Join(", ", BoundedAreas)}.");
}
