using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Pipeline.Api.Security;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Ingest;
using Pipeline.Infrastructure.State;

namespace Pipeline.Api;

public sealed record RunAccepted(int Run, string Campaign, int Files, bool AlreadyRegistered, IReadOnlyList<Guid> FileIds);

public sealed record ActionAccepted(Guid FileId, string Action, string From);

public sealed record ProductionSummary(
    IReadOnlyList<StateCount> States,
    IReadOnlyDictionary<string, long> Totals,
    int Runs,
    int MergedFiles,
    long MergedBytes,
    long MergedEvents);

public sealed record DatasetSummary(string Campaign, string Dataset, int MergedFiles, long Bytes, long Events);

public static class PipelineEndpoints
{
    public static IEndpointRouteBuilder MapPipelineEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup("/api").WithTags("Production")
            .RequireAuthorization(ApiPolicies.Read)
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        api.MapPost("/runs", RegisterRun)
            .WithName("RegisterRun")
            .WithSummary("Register a run's raw files, as the data-acquisition system's run event does")
            .WithDescription("Validates every file before registering anything. Announcing the same run again is accepted and changes nothing; announcing it with different files is a conflict.")
            .Accepts<RunRecorded>("application/json")
            .RequireAuthorization(ApiPolicies.Act)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        api.MapGet("/runs", async (IRunRegistry runs, CancellationToken ct) => TypedResults.Ok(await runs.ListRunsAsync(ct)))
            .WithName("ListRuns").WithSummary("Registered runs");
        api.MapGet("/files", ListFiles)
            .WithName("ListFiles").WithSummary("Files filtered by campaign, state, run range and stream, in (run, name) order, with cursor paging");
        api.MapGet("/files/{id:guid}", GetFile)
            .WithName("GetFile").WithSummary("One file with its full history, attempts, outputs and log locations");
        api.MapPost("/files/{id:guid}/retry", RetryFile)
            .WithName("RetryFile").WithSummary("Start a failed file again from stage-in with a fresh attempt budget")
            .RequireAuthorization(ApiPolicies.Act)
            .ProducesProblem(StatusCodes.Status403Forbidden);
        api.MapGet("/summary", Summary)
            .WithName("GetSummary").WithSummary("Counts of files per campaign and state, and what the archive holds");
        api.MapGet("/datasets", Datasets)
            .WithName("ListDatasets").WithSummary("Merged files archived per dataset, with bytes and events");
        api.MapGet("/catalog", FindInCatalog)
            .WithName("FindInCatalog").WithSummary("Every catalogued copy of a logical file name, with area, size and adler32");
        return endpoints;
    }

    private static async Task<Results<Accepted<RunAccepted>, ValidationProblem, ProblemHttpResult>> RegisterRun(
        [FromBody] RunRecorded? run, RunIngestion ingestion, IPublishEndpoint publisher, CancellationToken ct)
    {
        try
        {
            var result = await ingestion.IngestAsync(run!, publisher, ct);
            return TypedResults.Accepted($"/api/files?runFrom={result.Run}&runTo={result.Run}",
                new RunAccepted(result.Run, result.Campaign, result.Files, result.AlreadyRegistered, result.FileIds));
        }
        catch (InvalidRunException invalid)
        {
            return TypedResults.ValidationProblem(invalid.Errors, title: "The run event is not valid; nothing was registered.");
        }
        catch (ConflictingRunException conflict)
        {
            return TypedResults.Problem(conflict.Message, statusCode: StatusCodes.Status409Conflict, title: "Run already registered with different files");
        }
    }

    private static async Task<Results<Ok<FilePage>, ProblemHttpResult>> ListFiles(
        IFileSagaStore store, string? campaign, string? state, int? runFrom, int? runTo, string? stream, string? after, int? limit, CancellationToken ct)
    {
        if (limit is < 1 or > 1000)
        {
            return TypedResults.Problem("limit must be between 1 and 1000.", statusCode: StatusCodes.Status400BadRequest, title: "Bad paging");
        }
        try
        {
            if (after is not null)
            {
                FileCursor.Decode(after);
            }
            return TypedResults.Ok(await store.ListAsync(new FileQuery(campaign, state, runFrom, runTo, stream, after, limit ?? 100), ct));
        }
        catch (FormatException ex)
        {
            return TypedResults.Problem(ex.Message, statusCode: StatusCodes.Status400BadRequest, title: "Bad paging cursor");
        }
    }

    private static async Task<Results<Ok<FileState>, ProblemHttpResult>> GetFile(Guid id, IFileSagaStore store, CancellationToken ct) =>
        await store.LoadAsync(id, ct) is { } file
            ? TypedResults.Ok(file)
            : NotFound($"No file with id {id}.");

    private static async Task<Results<Accepted<ActionAccepted>, ProblemHttpResult>> RetryFile(
        Guid id, IFileSagaStore store, IPublishEndpoint publisher, HttpContext http, CancellationToken ct)
    {
        var file = await store.LoadAsync(id, ct);
        if (file is null)
        {
            return NotFound($"No file with id {id}.");
        }
        if (file.CurrentState != "Failed")
        {
            return TypedResults.Problem($"File {id} is {file.CurrentState}; only failed files can be retried.",
                statusCode: StatusCodes.Status409Conflict, title: "File is not failed");
        }
        await publisher.Publish(new RetryFile(id, file.Run, file.Stream, file.Campaign, http.Connection.RemoteIpAddress?.ToString() ?? "api"), ct);
        return TypedResults.Accepted($"/api/files/{id}", new ActionAccepted(id, "retry", file.CurrentState));
    }

    private static async Task<Ok<ProductionSummary>> Summary(IFileSagaStore store, IRunRegistry runs, ICatalog catalog, CancellationToken ct)
    {
        var states = await store.CountByStateAsync(ct);
        var merged = await catalog.ListAsync(CatalogEntry.Merged, null, ct);
        var totals = states.GroupBy(s => s.State, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Sum(s => s.Files), StringComparer.Ordinal);
        return TypedResults.Ok(new ProductionSummary(states, totals, (await runs.ListRunsAsync(ct)).Count,
            merged.Count, merged.Sum(m => m.Size), merged.Sum(m => m.Events)));
    }

    private static async Task<Ok<IReadOnlyList<DatasetSummary>>> Datasets(ICatalog catalog, string? campaign, CancellationToken ct)
    {
        var merged = await catalog.ListAsync(CatalogEntry.Merged, campaign, ct);
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

    private static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(detail, statusCode: StatusCodes.Status404NotFound, title: "Not found");
}
