using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Pipeline.Contracts;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;

namespace Pipeline.Api;

public sealed record CalibrationRequest(string? Tag, int? RunFrom, int? RunTo);

public sealed record CalibrationAccepted(CalibrationRecord Calibration, bool AlreadyRegistered);

public sealed record SupersedeRequest(string? By);

public sealed record Supersession(string Kind, string Superseded, string By);

/// <summary>A campaign whose archived outputs were made with a release or calibration since superseded.</summary>
public sealed record StaleCampaign(string Campaign, string Reason, int MergedFiles, int RawFiles, IReadOnlyList<string> Merged);

/// <summary>
/// Reprocess exactly the raw files behind a campaign's stale outputs, as a new reprocessing campaign: the stale
/// campaign's definition with a new name, and the given release and calibration (by default the superseding ones).
/// </summary>
public sealed record ReprocessStaleRequest(string? Name, string? Campaign, ReleaseSpec? Release, string? CalibrationTag, int? Priority);

/// <summary>
/// Calibrations and superseded releases: registering calibration constants (held files start), marking a calibration or
/// a release superseded, and the campaigns whose archived outputs are stale because of it, reprocessed in one call.
/// </summary>
public static class CalibrationEndpoints
{
    public static IEndpointRouteBuilder MapCalibrationEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var (api, act) = endpoints.MapApiGroups("/api", "Campaigns");
        api.MapGet("/calibrations", async (ICampaignStore store, string? tag, CancellationToken ct) => TypedResults.Ok(await store.ListCalibrationsAsync(tag, ct)))
            .WithName("ListCalibrations").WithSummary("Registered calibrations (of one tag with ?tag=), with the runs each covers");
        act.MapPost("/calibrations", RegisterCalibration)
            .WithName("RegisterCalibration")
            .WithSummary("Register calibration constants for a run range: files of campaigns waiting for this tag in those runs start")
            .Accepts<CalibrationRequest>("application/json")
            .ProducesValidationProblem();
        act.MapPost("/calibrations/{tag}/supersede", (string tag, [FromBody] SupersedeRequest? request, CampaignService service, HttpContext http, CancellationToken ct) =>
                SupersedeAsync("calibration", tag, request, CampaignService.SupersededCalibrationKey(tag), service, http, ct))
            .WithName("SupersedeCalibration").WithSummary("Mark a calibration tag superseded by another: outputs made with it are listed as stale")
            .Accepts<SupersedeRequest>("application/json")
            .ProducesValidationProblem();
        act.MapPost("/releases/{version}/supersede", (string version, [FromBody] SupersedeRequest? request, CampaignService service, HttpContext http, CancellationToken ct) =>
                SupersedeAsync("release", version, request, CampaignService.SupersededReleaseKey(version), service, http, ct))
            .WithName("SupersedeRelease").WithSummary("Mark a release version superseded by another: outputs made with it are listed as stale")
            .Accepts<SupersedeRequest>("application/json")
            .ProducesValidationProblem();
        api.MapGet("/stale", ListStale)
            .WithName("ListStale").WithSummary("Campaigns whose archived outputs were made with a superseded release or calibration, with those outputs");
        act.MapPost("/stale/reprocess", ReprocessStale)
            .WithName("ReprocessStale")
            .WithSummary("Create, in one call, a reprocessing campaign over exactly the raw files behind a campaign's stale archived outputs")
            .Accepts<ReprocessStaleRequest>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        return endpoints;
    }

    private static async Task<Results<Accepted<CalibrationAccepted>, ValidationProblem>> RegisterCalibration(
        [FromBody] CalibrationRequest? request, CampaignService service, IPublishEndpoint publisher, TimeProvider time, HttpContext http, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (!CampaignValidation.IsName(request?.Tag))
        {
            errors["tag"] = ["must be 1-64 letters, digits, '.', '_' or '-'"];
        }
        if (request?.RunFrom is not > 0)
        {
            errors["runFrom"] = ["must be a positive run number"];
        }
        if (request?.RunTo is not > 0 || request.RunTo < request.RunFrom)
        {
            errors["runTo"] = ["must be a run number not below runFrom"];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: "The calibration is not valid; nothing was registered.");
        }
        var by = PipelineEndpoints.Holder(http);
        var added = await service.RegisterCalibrationAsync(new CalibrationRegistered(request!.Tag!, request.RunFrom!.Value, request.RunTo!.Value, by), publisher, ct);
        return TypedResults.Accepted($"/api/calibrations?tag={request.Tag}",
            new CalibrationAccepted(new CalibrationRecord(request.Tag!, request.RunFrom.Value, request.RunTo.Value, by, time.GetUtcNow()), !added));
    }

    private static async Task<Results<Accepted<Supersession>, ValidationProblem>> SupersedeAsync(
        string kind, string superseded, SupersedeRequest? request, string key, CampaignService service, HttpContext http, CancellationToken ct)
    {
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (!CampaignValidation.IsName(superseded))
        {
            errors[kind] = ["must be 1-64 letters, digits, '.', '_' or '-'"];
        }
        if (!CampaignValidation.IsName(request?.By))
        {
            errors["by"] = [$"the {kind} that replaces it: 1-64 letters, digits, '.', '_' or '-'"];
        }
        else if (request!.By == superseded)
        {
            errors["by"] = [$"a {kind} cannot supersede itself"];
        }
        if (errors.Count > 0)
        {
            return TypedResults.ValidationProblem(errors, title: $"Nothing was marked superseded.");
        }
        await service.SupersedeAsync(key, request!.By!, PipelineEndpoints.Holder(http), ct);
        return TypedResults.Accepted("/api/stale", new Supersession(kind, superseded, request.By!));
    }

    private static async Task<Ok<IReadOnlyList<StaleCampaign>>> ListStale(CampaignDirectory directory, CampaignService service, ICatalog catalog, CancellationToken ct)
    {
        var supersessions = await service.SupersessionsAsync(ct);
        var stale = new List<StaleCampaign>();
        foreach (var campaign in await directory.ListAsync(ct))
        {
            if (supersessions.StaleReason(campaign.Definition) is { } reason)
            {
                var merged = await ArchivedOutputsAsync(catalog, campaign.Name, ct);
                stale.Add(new StaleCampaign(campaign.Name, reason, merged.Count,
                    merged.SelectMany(m => m.Sources).Select(s => s.RawName).Distinct(StringComparer.Ordinal).Count(), [.. merged.Select(m => m.Name)]));
            }
        }
        return TypedResults.Ok<IReadOnlyList<StaleCampaign>>(stale);
    }

    /// <summary>A campaign's archived merged files, one entry per file however many copies it has.</summary>
    private static async Task<IReadOnlyList<CatalogEntry>> ArchivedOutputsAsync(ICatalog catalog, string campaign, CancellationToken ct) =>
        [.. (await catalog.ListAsync(CatalogEntry.Merged, campaign, ct)).DistinctBy(e => e.Name, StringComparer.Ordinal).OrderBy(e => e.Name, StringComparer.Ordinal)];

    private static async Task<Results<Created<CampaignView>, Ok<CampaignView>, ValidationProblem, ProblemHttpResult>> ReprocessStale(
        [FromBody] ReprocessStaleRequest? request, CampaignService service, ICampaignStore store, ICatalog catalog, IControlStore control,
        CampaignProgressSampler sampler, HttpContext http, CancellationToken ct)
    {
        if (request?.Campaign is null || !CampaignValidation.IsName(request.Campaign))
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["campaign"] = ["the campaign whose stale outputs are to be reprocessed is required"] });
        }
        var stale = await store.GetCampaignAsync(request.Campaign, ct);
        if (stale is null)
        {
            return PipelineEndpoints.NotFound($"No campaign '{request.Campaign}'.");
        }
        var supersessions = await service.SupersessionsAsync(ct);
        var old = stale.Definition;
        var problems = new Dictionary<string, string[]>(StringComparer.Ordinal);
        if (supersessions.StaleReason(old) is null)
        {
            problems["campaign"] = [$"the outputs of {request.Campaign} are not stale: neither its release nor its calibration is superseded"];
        }
        if (old.IsMonteCarlo)
        {
            problems["campaign"] = ["simulated outputs are regenerated by a new Monte Carlo campaign, not reprocessed"];
        }
        if (problems.Count > 0)
        {
            return TypedResults.ValidationProblem(problems, title: "Nothing to reprocess.");
        }
        var rawFiles = (await ArchivedOutputsAsync(catalog, request.Campaign, ct))
            .SelectMany(m => m.Sources).Select(s => s.RawName).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        var release = request.Release
            ?? (old.Release!.Version is { } version && supersessions.Releases.TryGetValue(version, out var newer) ? old.Release with { Version = newer } : old.Release);
        var calibration = request.CalibrationTag
            ?? (old.CalibrationTag is { } tag && supersessions.Calibrations.TryGetValue(tag, out var newerTag) ? newerTag : old.CalibrationTag);
        var definition = old with
        {
            Name = request.Name,
            Kind = CampaignKinds.Reprocessing,
            Release = release,
            CalibrationTag = calibration,
            Selection = new InputSelection { Files = rawFiles },
            Priority = request.Priority ?? old.Priority,
        };
        return await CampaignEndpoints.CreateCampaign(definition, service, control, sampler, http, ct);
    }
}
