using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Pipeline.Production.Audit;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>
/// A campaign as operators see it: its definition and status, whether it is paused, how far its feeder has
/// gone, its forecast, and why its archived outputs are stale (if they are).
/// </summary>
public sealed record CampaignView(
    string Campaign,
    string? Kind,
    string Status,
    bool Paused,
    string? By,
    DateTimeOffset? Since,
    int Priority,
    string? Release,
    string? CalibrationTag,
    int Version,
    string? CreatedBy,
    DateTimeOffset? CreatedAt,
    CampaignFeed? Feed,
    CampaignForecast Forecast,
    string? Stale,
    CampaignDefinition? Definition);

/// <summary>A campaign's measured run times and the time limit its next jobs get.</summary>
public sealed record CampaignRunTimes(string Campaign, long Files, double? MedianSeconds, double? P90Seconds, double? P99Seconds,
    int LimitSeconds, string LimitBasis, IReadOnlyList<RunTimeBucket> Buckets);

public sealed record RunTimeBucket(double UpToSeconds, long Files);

public sealed record PriorityRequest(int? Priority);

/// <summary>Whether a campaign is paused, by whom and since when: the answer to a pause or a resume.</summary>
public sealed record CampaignPause(string Campaign, bool Paused, string? By, DateTimeOffset? Since);

public sealed record CampaignCancelled(CampaignView Campaign, int FilesCancelled);

public static class CampaignEndpoints
{
    public static IEndpointRouteBuilder MapCampaignEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var (api, act) = endpoints.MapApiGroups("/api", "Campaigns");

        api.MapGet("/campaigns", ListCampaigns)
            .WithName("ListCampaigns")
            .WithSummary("Every campaign: definition, status, pause, feed position, forecast (files done and remaining, rate per stage, bottleneck, estimated completion) and staleness");
        api.MapGet("/campaigns/{campaign}", GetCampaign)
            .WithName("GetCampaign").WithSummary("One campaign with its forecast")
            .ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/campaigns/{campaign}/audit", Audit)
            .WithName("AuditCampaign")
            .WithSummary("Prove from the catalog alone that every raw file of the campaign is in each dataset that selects it exactly once, or list what is missing, doubled or unexpected; events=true also reads every byte and compares event by event")
            .WithDescription("Reads the file records (which outputs each raw file gave each dataset) and every archived merged file's manifest (its sources, their raw files' checksums and event counts, sealed by a digest); no archived byte is read unless events=true, which reads every raw file and every archived copy (a full read of the campaign's data). Complete when every raw file is archived, every manifest is sound and every output is in exactly one archived file (and, with events=true, every event where it belongs and every copy as catalogued). With Accept: application/x-ndjson the answer streams progress lines, then the report.")
            .Produces<CampaignAuditReport>()
            .Produces(StatusCodes.Status200OK, contentType: ProgressStream.MediaType)
            .ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/campaigns/{campaign}/run-times", RunTimes)
            .WithName("CampaignRunTimes")
            .WithSummary("How long the campaign's reconstructions ran (a histogram with its median and 90th and 99th percentiles) and the time limit its next jobs get")
            .WithDescription("The limit follows the measured run times: the configured quantile (Pipeline:WallTime:Quantile, 0.99) times a factor (1.5), no less than a floor and no more than the release's own limit; with fewer files measured than Pipeline:WallTime:MinimumFiles, the release's limit. A file whose job timed out is retried once with twice the limit it had. Each bucket's upToSeconds is its upper edge; percentiles are read as bucket edges, at most 19% above the true value.")
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPost("/campaigns", CreateCampaign)
            .WithName("CreateCampaign")
            .WithSummary("Create a campaign: prompt (takes new runs), reprocessing (every catalogued raw file it selects) or montecarlo (simulated, run by run)")
            .WithDescription("The definition is validated as a whole and every problem is listed. The same definition again answers 200 and changes nothing; another definition under an existing name is a conflict.")
            .Accepts<CampaignDefinition>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict);
        act.MapPut("/campaigns/{campaign}/priority", SetPriority)
            .WithName("SetCampaignPriority")
            .WithSummary("Set a campaign's share of the reconstruction slots against the other busy campaigns (3 against 1 gets about 75%)")
            .Accepts<PriorityRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPost("/campaigns/{campaign}/cancel", Cancel)
            .WithName("CancelCampaign")
            .WithSummary("Cancel a campaign: files not yet reconstructing end as cancelled (staged copies given back); those reconstructing finish and are merged and archived")
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPost("/campaigns/{campaign}/pause", PauseCampaign)
            .WithName("PauseCampaign")
            .WithSummary("Pause a campaign: no new stage-in or reconstruction is issued for its files until it is resumed")
            .WithDescription("Steps already issued finish, and what is reconstructed is still merged and archived (the campaign drains). Other campaigns are not slowed. Pausing a paused campaign changes nothing.")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        act.MapPost("/campaigns/{campaign}/resume", ResumeCampaign)
            .WithName("ResumeCampaign").WithSummary("Resume a paused campaign: its held files get their next step within a watchdog interval")
            .ProducesProblem(StatusCodes.Status400BadRequest);

        return endpoints;
    }

    private static async Task<Ok<IReadOnlyList<CampaignView>>> ListCampaigns(
        CampaignDirectory directory, IControlStore control, IFileSagaStore sagas, CampaignService service, CampaignProgressSampler sampler, CancellationToken ct)
    {
        var stored = (await directory.ListAsync(ct)).ToDictionary(c => c.Name, StringComparer.Ordinal);
        var paused = await PausedCampaignsAsync(control, ct);
        var supersessions = await service.SupersessionsAsync(ct);
        // Files of a campaign no longer (or never) stored are still shown, with what is known of them.
        var names = stored.Keys.Concat((await sagas.CountByStateAsync(ct)).Select(c => c.Campaign)).Concat(paused.Keys)
            .Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal);
        var views = new List<CampaignView>();
        foreach (var name in names)
        {
            views.Add(await ViewAsync(name, stored.GetValueOrDefault(name), paused, supersessions, sampler, ct));
        }
        return TypedResults.Ok<IReadOnlyList<CampaignView>>(views);
    }

    private static async Task<Results<Ok<CampaignView>, ProblemHttpResult>> GetCampaign(
        string campaign, ICampaignStore store, IControlStore control, CampaignService service, CampaignProgressSampler sampler, CancellationToken ct)
    {
        var stored = await store.GetCampaignAsync(campaign, ct);
        if (stored is null)
        {
            return PipelineEndpoints.NotFound($"No campaign '{campaign}'.");
        }
        return TypedResults.Ok(await ViewAsync(campaign, stored, await PausedCampaignsAsync(control, ct), await service.SupersessionsAsync(ct), sampler, ct));
    }

    private static async Task<Results<Ok<CampaignRunTimes>, ProblemHttpResult>> RunTimes(
        string campaign, ICampaignStore store, IRunTimeStore runTimes, CampaignWallTimes wallTimes, CancellationToken ct)
    {
        if (await store.GetCampaignAsync(campaign, ct) is not { Definition.Release: var release })
        {
            return PipelineEndpoints.NotFound($"No campaign '{campaign}'.");
        }
        var measured = await runTimes.GetAsync(campaign, ct);
        var limit = await wallTimes.LimitAsync(campaign, release?.EffectiveTimeoutSeconds ?? ReleaseSpec.DefaultTimeoutSeconds, ct);
        return TypedResults.Ok(new CampaignRunTimes(campaign, measured.Files, measured.Quantile(0.5), measured.Quantile(0.9), measured.Quantile(0.99),
            limit.Seconds, limit.Basis,
            [.. measured.Buckets.Where(b => b.Value > 0).OrderBy(b => b.Key).Select(b => new RunTimeBucket(Math.Round(RunTimeHistogram.UpperEdge(b.Key), 1), b.Value))]));
    }

    private static async Task<IResult> Audit(
        string campaign, HttpContext http, ICampaignStore store, IFileSagaStore sagas, CampaignAudit audit, CancellationToken ct, bool events = false)
    {
        var files = (await sagas.CountByStateAsync(ct)).Where(c => c.Campaign == campaign).Sum(c => c.Files);
        if (files == 0 && await store.GetCampaignAsync(campaign, ct) is null)
        {
            return PipelineEndpoints.NotFound($"No campaign '{campaign}'.");
        }
        return ProgressStream.Wanted(http.Request)
            ? ProgressStream.Of((progress, token) => audit.RunAsync(campaign, events, token, progress, files))
            : TypedResults.Ok(await audit.RunAsync(campaign, events, ct));
    }

    private static async Task<Dictionary<string, PausedStage>> PausedCampaignsAsync(IControlStore control, CancellationToken ct) =>
        (await control.ListPausedAsync(ct))
            .Select(p => (Campaign: PauseState.CampaignOf(p.Stage), Pause: p))
            .Where(p => p.Campaign is not null)
            .ToDictionary(p => p.Campaign!, p => p.Pause, StringComparer.Ordinal);

    private static async Task<CampaignView> ViewAsync(
        string name, CampaignRecord? stored, IReadOnlyDictionary<string, PausedStage> paused, Supersessions supersessions, CampaignProgressSampler sampler, CancellationToken ct)
    {
        var pause = paused.GetValueOrDefault(name);
        var definition = stored?.Definition;
        return new CampaignView(name, definition?.Kind, stored?.Status ?? "unknown", pause is not null, pause?.By, pause?.Since,
            definition?.EffectivePriority ?? CampaignDefinition.DefaultPriority, definition?.Release?.Version, definition?.CalibrationTag,
            stored?.Version ?? 0, stored?.CreatedBy, stored?.CreatedAt, stored?.Feed,
            await sampler.ForecastAsync(name, stored?.ExpectedFiles ?? 0, ct),
            definition is null ? null : supersessions.StaleReason(definition), definition);
    }

    internal static async Task<Results<Created<CampaignView>, Ok<CampaignView>, ValidationProblem, ProblemHttpResult>> CreateCampaign(
        [FromBody] CampaignDefinition? definition, CampaignService service, IControlStore control, CampaignProgressSampler sampler, HttpContext http, CancellationToken ct)
    {
        try
        {
            var created = await service.CreateAsync(definition, PipelineEndpoints.Holder(http), ct);
            var view = await ViewAsync(created.Campaign.Name, created.Campaign, await PausedCampaignsAsync(control, ct), await service.SupersessionsAsync(ct), sampler, ct);
            return created.AlreadyExisted ? TypedResults.Ok(view) : TypedResults.Created($"/api/campaigns/{created.Campaign.Name}", view);
        }
        catch (InvalidCampaignException invalid)
        {
            return TypedResults.ValidationProblem(invalid.Errors, title: "The campaign definition is not valid; nothing was created.");
        }
        catch (ConflictingCampaignException conflict)
        {
            return TypedResults.Problem(conflict.Message, statusCode: StatusCodes.Status409Conflict, title: "Campaign exists");
        }
    }

    private static async Task<Results<Accepted<CampaignView>, ValidationProblem, ProblemHttpResult>> SetPriority(
        string campaign, [FromBody] PriorityRequest? request, CampaignService service, IControlStore control, CampaignProgressSampler sampler, CancellationToken ct)
    {
        if (request?.Priority is not (>= 1 and <= 1000))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["priority"] = ["must be between 1 and 1000"] });
        }
        var changed = await service.SetPriorityAsync(campaign, request.Priority.Value, ct);
        if (changed is null)
        {
            return PipelineEndpoints.NotFound($"No campaign '{campaign}'.");
        }
        return TypedResults.Accepted($"/api/campaigns/{campaign}",
            await ViewAsync(campaign, changed, await PausedCampaignsAsync(control, ct), await service.SupersessionsAsync(ct), sampler, ct));
    }

    private static async Task<Results<Accepted<CampaignCancelled>, ProblemHttpResult>> Cancel(
        string campaign, CampaignService service, IControlStore control, CampaignProgressSampler sampler, IPublishEndpoint publisher, HttpContext http, CancellationToken ct)
    {
        var cancelled = await service.CancelAsync(campaign, PipelineEndpoints.Holder(http), publisher, ct);
        if (cancelled is not { } done)
        {
            return PipelineEndpoints.NotFound($"No campaign '{campaign}'.");
        }
        var view = await ViewAsync(campaign, done.Campaign, await PausedCampaignsAsync(control, ct), await service.SupersessionsAsync(ct), sampler, ct);
        return TypedResults.Accepted($"/api/campaigns/{campaign}", new CampaignCancelled(view, done.FilesCancelled));
    }

    private static ProblemHttpResult? BadCampaignName(string campaign) =>
        CampaignValidation.IsName(campaign)
            ? null
            : TypedResults.Problem("A campaign name is 1-64 letters, digits, '-', '_' or '.'.", statusCode: StatusCodes.Status400BadRequest, title: "Bad campaign name");

    private static async Task<Results<Accepted<CampaignPause>, ProblemHttpResult>> PauseCampaign(
        string campaign, IControlStore control, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        if (BadCampaignName(campaign) is { } problem)
        {
            return problem;
        }
        var paused = await PipelineEndpoints.PauseAsync(PauseState.CampaignTarget(campaign), control, time, http, ct);
        return TypedResults.Accepted("/api/campaigns", new CampaignPause(campaign, true, paused.By, paused.Since));
    }

    private static async Task<Results<Accepted<CampaignPause>, ProblemHttpResult>> ResumeCampaign(string campaign, IControlStore control, CancellationToken ct)
    {
        if (BadCampaignName(campaign) is { } problem)
        {
            return problem;
        }
        await control.ResumeAsync(PauseState.CampaignTarget(campaign), ct);
        return TypedResults.Accepted("/api/campaigns", new CampaignPause(campaign, false, null, null));
    }
}
