using Microsoft.AspNetCore.Http.HttpResults;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;

namespace Pipeline.Api;

/// <summary>One run as its files stand: per campaign, the files, events and bytes in each state, and why files failed.</summary>
public sealed record RunView(int Run, DateTimeOffset? RegisteredAt, int AnnouncedFiles, IReadOnlyList<RunCampaignView> Campaigns, IReadOnlyList<RunFileView> Files, bool Truncated);

public sealed record RunCampaignView(string Campaign, int Files, long Events, long Bytes, IReadOnlyList<RunStateCount> States, IReadOnlyList<RunFailureCount> Failures);

public sealed record RunStateCount(string State, int Files, long Events, long Bytes);

public sealed record RunFailureCount(string Reason, int Files);

public sealed record RunFileView(Guid Id, string Campaign, string Stream, string LogicalName, string State, int Attempt, long Size, long Events, string? FailureReason);

/// <summary>A file found by the search box: by its id (or trace id), or by its logical name in any campaign.</summary>
public sealed record FileFound(Guid Id, string Campaign, int Run, string LogicalName, string State);

/// <summary>What the dashboard's run view and search box read.</summary>
public static class BrowseEndpoints
{
    /// <summary>A run's view reads each file's saga; past this many files it shows the first ones, and says so.</summary>
    public const int MaxRunFiles = 5000;

    public static IEndpointRouteBuilder MapBrowseEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var (api, _) = endpoints.MapApiGroups("/api", "Production");
        api.MapGet("/runs/{run:int}", GetRun)
            .WithName("GetRun").WithSummary("One run: per campaign, its files, events and bytes in each state and its failures by reason, and every file with its state")
            .ProducesProblem(StatusCodes.Status404NotFound);
        api.MapGet("/search", Search)
            .WithName("SearchFiles").WithSummary("Files by id, trace id (the id's 32 hex digits) or logical name (in every campaign)")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        return endpoints;
    }

    private static async Task<Results<Ok<RunView>, ProblemHttpResult>> GetRun(int run, IFileSagaStore store, IRunRegistry runs, CancellationToken ct)
    {
        var record = (await runs.ListRunsAsync(ct)).FirstOrDefault(r => r.Run == run);
        var summaries = new List<FileSummary>();
        string? after = null;
        do
        {
            var page = await store.ListAsync(new FileQuery(RunFrom: run, RunTo: run, After: after, Limit: 1000), ct);
            summaries.AddRange(page.Files);
            after = page.Next;
        }
        while (after is not null && summaries.Count < MaxRunFiles);
        if (record is null && summaries.Count == 0)
        {
            return TypedResults.Problem($"No run {run} is registered.", statusCode: StatusCodes.Status404NotFound, title: "Not found");
        }
        var truncated = summaries.Count > MaxRunFiles || after is not null;
        var files = new List<RunFileView>();
        // Sizes and events live in each file's saga: read a few at a time.
        await Parallel.ForEachAsync(summaries.Take(MaxRunFiles), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct }, async (summary, token) =>
        {
            var saga = await store.LoadAsync(summary.Id, token);
            var view = new RunFileView(summary.Id, summary.Campaign, summary.Stream, summary.LogicalName, summary.State, summary.Attempt,
                saga?.Size ?? 0, saga?.Events ?? 0, summary.FailureReason);
            lock (files)
            {
                files.Add(view);
            }
        });
        files.Sort((a, b) => (a.Campaign, a.LogicalName).CompareTo((b.Campaign, b.LogicalName)));
        var campaigns = files.GroupBy(f => f.Campaign, StringComparer.Ordinal).Select(c => new RunCampaignView(c.Key, c.Count(), c.Sum(f => f.Events), c.Sum(f => f.Size),
            [.. c.GroupBy(f => f.State, StringComparer.Ordinal).OrderBy(s => FileStates.InFlowOrder.IndexOf(s.Key)).Select(s => new RunStateCount(s.Key, s.Count(), s.Sum(f => f.Events), s.Sum(f => f.Size)))],
            [.. c.Where(f => f.State == FileStates.Failed).GroupBy(f => f.FailureReason ?? "", StringComparer.Ordinal)
                .OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal).Select(g => new RunFailureCount(g.Key, g.Count()))]));
        return TypedResults.Ok(new RunView(run, record?.RegisteredAt, record?.Files ?? 0, [.. campaigns], files, truncated));
    }

    private static async Task<Results<Ok<IReadOnlyList<FileFound>>, ProblemHttpResult>> Search(string? q, IFileSagaStore store, CampaignDirectory campaigns, CancellationToken ct)
    {
        var text = q?.Trim();
        if (string.IsNullOrEmpty(text) || text.Length > 1024)
        {
            return TypedResults.Problem("q must be a file id, a trace id or a logical name (at most 1024 characters).", statusCode: StatusCodes.Status400BadRequest, title: "Bad search");
        }
        // A Guid in any of its forms: the file id with dashes, or its 32 hex digits as the trace id shows them.
        IEnumerable<Guid> candidates = Guid.TryParse(text, out var id)
            ? [id]
            : (await campaigns.ListAsync(ct)).Select(c => FileIds.For(c.Name, text));
        var found = new List<FileFound>();
        foreach (var candidate in candidates)
        {
            if (await store.LoadAsync(candidate, ct) is { } file)
            {
                found.Add(new FileFound(file.CorrelationId, file.Campaign, file.Run, file.LogicalName, file.CurrentState));
            }
        }
        return TypedResults.Ok<IReadOnlyList<FileFound>>(found);
    }
}
