using System.Text.Json;
using System.Text.Json.Nodes;
using MassTransit;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Pipeline.Api.Security;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Failures;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>A run taken in, and the prompt campaigns that took its files.</summary>
public sealed record RunAccepted(int Run, IReadOnlyList<string> Campaigns, int Files, bool AlreadyRegistered, IReadOnlyList<Guid> FileIds);

public sealed record ActionAccepted(Guid FileId, string Action, string From);

/// <summary>How to retry: more attempts than the campaign grants, a longer reconstruction time limit.</summary>
public sealed record RetryOptions(int ExtraAttempts = 0, int? TimeoutSeconds = null);

/// <summary>
/// Which failed files to retry, and how. Every filter is optional; only failed files are ever matched.
/// <paramref name="DryRun"/> counts the matching files and retries none (the preview before a bulk action);
/// <paramref name="Limit"/> retries at most that many, so a retry confirmed for N files never touches more.
/// </summary>
public sealed record BulkRetryRequest(
    string? Campaign = null,
    string? Signature = null,
    int? RunFrom = null,
    int? RunTo = null,
    string? Stream = null,
    int ExtraAttempts = 0,
    int? TimeoutSeconds = null,
    bool DryRun = false,
    int? Limit = null);

/// <summary>How many files were retried; on a dry run none, and <paramref name="Matched"/> says how many would be.</summary>
public sealed record BulkRetryAccepted(int Retried, BulkRetryRequest Filter, int? Matched = null);

/// <summary>One row of the failure table; <see cref="Id"/> filters files (<c>/api/files?signature=</c>) and retries.</summary>
public sealed record FailureRow(string Id, string Campaign, string Stage, string Signature, string? Release, long Files, DateTimeOffset LastFailedAt, string ExampleReason);

/// <summary>The runs and files of production: registering a run, listing and reading files, retrying failed ones, the failure table and job logs.</summary>
public static class FileEndpoints
{
    public static IEndpointRouteBuilder MapFileEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var (api, act) = endpoints.MapApiGroups("/api", "Production");

        act.MapPost("/runs", RegisterRun)
            .WithName("RegisterRun")
            .WithSummary("Register a run's raw files, as the data-acquisition system's run event does")
            .WithDescription("Validates every file before registering anything. Announcing the same run again is accepted and changes nothing; announcing it with different files is a conflict.")
            .Accepts<RunRecorded>("application/json")
            .ProducesValidationProblem()
            .ProducesProblem(StatusCodes.Status409Conflict);
        api.MapGet("/runs", async (IRunRegistry runs, CancellationToken ct) => TypedResults.Ok(await runs.ListRunsAsync(ct)))
            .WithName("ListRuns").WithSummary("Registered runs");
        api.MapGet("/files", ListFiles)
            .WithName("ListFiles").WithSummary("Files filtered by campaign, state, run range, stream, dataset (an output in it) and failure signature, in (run, name) order, with cursor paging")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        api.MapGet("/files/{id:guid}", GetFile)
            .WithName("GetFile").WithSummary("One file with its full history, attempts, outputs, its catalog entries (raw and merged) and links to its job logs")
            .Produces<FileState>()
            .ProducesProblem(StatusCodes.Status404NotFound);
        act.MapPost("/files/{id:guid}/retry", RetryFile)
            .WithName("RetryFile").WithSummary("Start a failed file again from stage-in with a fresh attempt budget")
            .Accepts<RetryOptions>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status409Conflict);
        act.MapPost("/files/retry", RetryFailedFiles)
            .WithName("RetryFailedFiles")
            .WithSummary("Retry every failed file that matches a filter (campaign, failure signature, run range, stream)")
            .WithDescription("Answers 202 with how many files were sent back to stage-in. Files that are not failed are never touched, so the same request again retries nothing twice. dryRun=true counts the matching files (matched) and retries none; limit retries at most that many.")
            .Accepts<BulkRetryRequest>("application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        api.MapGet("/failures", Failures)
            .WithName("ListFailures").WithSummary("Failed files grouped by campaign, stage, failure signature and release, the largest group first");
        api.MapGet("/logs/{**name}", GetLog)
            .WithName("GetLog").WithSummary("One collected job log or histogram file, by its name in the logs area (as listed in a file's logNames)")
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status404NotFound);
        return endpoints;
    }

    private static async Task<Results<Accepted<RunAccepted>, ValidationProblem, ProblemHttpResult>> RegisterRun(
        [FromBody] RunRecorded? run, RunIngestion ingestion, IPublishEndpoint publisher, CancellationToken ct)
    {
        try
        {
            var result = await ingestion.IngestAsync(run!, publisher, ct);
            return TypedResults.Accepted($"/api/files?runFrom={result.Run}&runTo={result.Run}",
                new RunAccepted(result.Run, result.Campaigns, result.Files, result.AlreadyRegistered, result.FileIds));
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
        IFileSagaStore store, string? campaign, string? state, int? runFrom, int? runTo, string? stream, string? dataset, string? signature, string? after, int? limit, CancellationToken ct)
    {
        if (limit is < 1 or > 1000)
        {
            return TypedResults.Problem("limit must be between 1 and 1000.", statusCode: StatusCodes.Status400BadRequest, title: "Bad paging");
        }
        if (state is not null && !FileStates.All.Contains(state))
        {
            return TypedResults.Problem($"state must be one of {string.Join(", ", FileStates.All.Order(StringComparer.Ordinal))}.", statusCode: StatusCodes.Status400BadRequest, title: "Unknown state");
        }
        try
        {
            if (after is not null)
            {
                FileCursor.Decode(after);
            }
            string? pattern = null;
            if (signature is not null)
            {
                pattern = await SignatureOf(store, signature, campaign, ct);
                if (pattern is null)
                {
                    return TypedResults.Ok(new FilePage([], null));
                }
            }
            return TypedResults.Ok(await store.ListAsync(new FileQuery(campaign, state, runFrom, runTo, stream, after, limit ?? 100, pattern, dataset), ct));
        }
        catch (FormatException ex)
        {
            return TypedResults.Problem(ex.Message, statusCode: StatusCodes.Status400BadRequest, title: "Bad paging cursor");
        }
    }

    private static async Task<Results<JsonHttpResult<JsonObject>, ProblemHttpResult>> GetFile(Guid id, IFileSagaStore store, ICatalog catalog, CancellationToken ct)
    {
        if (await store.LoadAsync(id, ct) is not { } file)
        {
            return PipelineEndpoints.NotFound($"No file with id {id}.");
        }
        // The saga as stored, plus where the file is catalogued: the raw file itself, and every archived merged
        // file that holds one of its outputs (merged files are catalogued under merged/<name>).
        var entries = new List<CatalogEntry>(await catalog.FindAsync(file.LogicalName, ct));
        foreach (var merged in file.Outputs.Select(o => o.MergedName).OfType<string>().Distinct(StringComparer.Ordinal))
        {
            entries.AddRange(await catalog.FindAsync($"merged/{merged}", ct));
        }
        var detail = JsonSerializer.SerializeToNode(file, Json)!.AsObject();
        detail["catalog"] = JsonSerializer.SerializeToNode(entries, Json);
        detail["logLinks"] = new JsonArray([.. file.LogNames.Select(n => JsonValue.Create($"/api/logs/{n}"))]);
        // The file's own trace (see FileTracing): its id is the file id's 32 hex digits.
        detail["traceId"] = FileTracing.TraceIdOf(file.CorrelationId);
        return TypedResults.Json(detail, Json);
    }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    /// <summary>The signature pattern with this id among the current failures, or null.</summary>
    private static async Task<string?> SignatureOf(IFileSagaStore store, string id, string? campaign, CancellationToken ct) =>
        (await store.CountFailuresAsync(campaign, ct)).Select(g => g.Signature).FirstOrDefault(s => FailureSignature.Id(s) == id);

    private static string? CheckRetryOptions(int extraAttempts, int? timeoutSeconds) =>
        extraAttempts is < 0 or > 100 ? "extraAttempts must be between 0 and 100."
        : timeoutSeconds is < 1 or > 7 * 24 * 3600 ? "timeoutSeconds must be between 1 and 604800 (a week)."
        : null;

    private static async Task<Results<Accepted<ActionAccepted>, ProblemHttpResult>> RetryFile(
        Guid id, [FromBody] RetryOptions? options, IFileSagaStore store, IPublishEndpoint publisher, HttpContext http, CancellationToken ct)
    {
        options ??= new RetryOptions();
        if (CheckRetryOptions(options.ExtraAttempts, options.TimeoutSeconds) is { } problem)
        {
            return TypedResults.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "Bad retry options");
        }
        var file = await store.LoadAsync(id, ct);
        if (file is null)
        {
            return PipelineEndpoints.NotFound($"No file with id {id}.");
        }
        if (file.CurrentState != FileStates.Failed)
        {
            return TypedResults.Problem($"File {id} is {file.CurrentState}; only failed files can be retried.",
                statusCode: StatusCodes.Status409Conflict, title: "File is not failed");
        }
        await publisher.PublishBoundedAsync(new RetryFile(id, file.Run, file.Stream, file.Campaign, PipelineEndpoints.Holder(http), options.ExtraAttempts, options.TimeoutSeconds), ct);
        return TypedResults.Accepted($"/api/files/{id}", new ActionAccepted(id, "retry", file.CurrentState));
    }

    private static async Task<Results<Accepted<BulkRetryAccepted>, ProblemHttpResult>> RetryFailedFiles(
        [FromBody] BulkRetryRequest? request, IFileSagaStore store, IPublishEndpoint publisher, HttpContext http, CancellationToken ct)
    {
        request ??= new BulkRetryRequest();
        if ((CheckRetryOptions(request.ExtraAttempts, request.TimeoutSeconds)
            ?? (request.Limit is < 1 or > 1_000_000 ? "limit must be between 1 and 1000000." : null)) is { } problem)
        {
            return TypedResults.Problem(problem, statusCode: StatusCodes.Status400BadRequest, title: "Bad retry options");
        }
        string? pattern = null;
        if (request.Signature is not null && (pattern = await SignatureOf(store, request.Signature, request.Campaign, ct)) is null)
        {
            return TypedResults.Accepted("/api/failures", new BulkRetryAccepted(0, request, request.DryRun ? 0 : null));
        }
        var matched = 0;
        var limit = request.Limit ?? int.MaxValue;
        string? after = null;
        do
        {
            var page = await store.ListAsync(new FileQuery(request.Campaign, FileStates.Failed, request.RunFrom, request.RunTo, request.Stream, after, 1000, pattern), ct);
            foreach (var file in page.Files.Take(limit - matched))
            {
                if (!request.DryRun)
                {
                    await publisher.PublishBoundedAsync(new RetryFile(file.Id, file.Run, file.Stream, file.Campaign, PipelineEndpoints.Holder(http), request.ExtraAttempts, request.TimeoutSeconds), ct);
                }
                matched++;
            }
            after = matched < limit ? page.Next : null;
        }
        while (after is not null);
        return TypedResults.Accepted("/api/files?state=Failed",
            request.DryRun ? new BulkRetryAccepted(0, request, matched) : new BulkRetryAccepted(matched, request));
    }

    internal static async Task<IReadOnlyList<FailureRow>> FailureRows(IFileSagaStore store, string? campaign, CancellationToken ct) =>
        [.. (await store.CountFailuresAsync(campaign, ct)).Select(g =>
            new FailureRow(FailureSignature.Id(g.Signature), g.Campaign, g.Stage, g.Signature, g.Release, g.Files, g.LastFailedAt, g.ExampleReason))];

    private static async Task<Ok<IReadOnlyList<FailureRow>>> Failures(IFileSagaStore store, string? campaign, CancellationToken ct) =>
        TypedResults.Ok(await FailureRows(store, campaign, ct));

    private static async Task<Results<FileStreamHttpResult, ProblemHttpResult>> GetLog(string name, StorageAreas areas, CancellationToken ct)
    {
        if (AreaNames.Problem(name) is { } problem)
        {
            return TypedResults.Problem($"'{name}' {problem}.", statusCode: StatusCodes.Status400BadRequest, title: "Bad log name");
        }
        if (!await areas.Logs.ExistsAsync(name, ct))
        {
            return PipelineEndpoints.NotFound($"No collected log named '{name}'.");
        }
        // Streamed from the area, never read whole: a histogram file can be large.
        var type = name.EndsWith(".json", StringComparison.Ordinal) ? "application/json" : "text/plain; charset=utf-8";
        var stream = areas.Logs is LocalArea folder ? folder.OpenRead(name) : await areas.Logs.OpenReadAsync(name, ct);
        // A folder's file can be read from any byte; a remote area's stream only from the start.
        return TypedResults.File(stream, type, enableRangeProcessing: stream.CanSeek);
    }
}
