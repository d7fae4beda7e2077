using MassTransit;
using Pipeline.Contracts;
using Pipeline.Production.Jobs;
using Pipeline.Production.State;

namespace Pipeline.Stager;

/// <summary>
/// Which stage-in requests a file still waits for. A stage-in asked for again after a stall, or one of an attempt that has
/// since been replaced, stays in the stager's queue; staged, each would take a tape read and cache room only to be
/// discarded, and a queue full of them holds the requests that count behind them (a 200-file fault run staged 680 times,
/// 399 of them for nobody).
/// </summary>
public static class StageRequestFilter
{
    /// <summary>
    /// One request per file and attempt, and only for a file the orchestrator has in <c>Staging</c> under that attempt (or
    /// does not know: its saga decides). When the orchestrator does not answer, every request is kept, as the saga ignores
    /// a report it no longer waits for.
    /// </summary>
    public static async Task<IReadOnlyList<TRequest>> WantedAsync<TRequest>(
        IFileStates states, IReadOnlyList<TRequest> requests, Func<TRequest, StageFile> messageOf, ILogger logger, CancellationToken cancellationToken)
    {
        var distinct = requests.DistinctBy(request => (messageOf(request).FileId, messageOf(request).Attempt)).ToList();
        Dictionary<Guid, FileStatus> known;
        try
        {
            known = (await states.FindAsync([.. distinct.Select(request => messageOf(request).FileId).Distinct()], cancellationToken))
                .ToDictionary(file => file.FileId);
        }
        catch (Exception ex) when (ex is TimeoutException or RequestException)
        {
            logger.LogWarning("Could not ask the orchestrator which of {Count} stage-in requests are still wanted ({Reason}); all are staged", distinct.Count, ex.Message);
            return distinct;
        }
        var wanted = distinct.Where(request => !known.TryGetValue(messageOf(request).FileId, out var file)
            || (file.State == FileStates.Staging && file.Attempt == messageOf(request).Attempt)).ToList();
        if (wanted.Count < requests.Count)
        {
            logger.LogInformation("Dropped {Dropped} of {Count} stage-in requests nobody waits for any more (repeated, of an earlier attempt or of a file past staging)",
                requests.Count - wanted.Count, requests.Count);
        }
        return wanted;
    }
}
