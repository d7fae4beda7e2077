using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.Jobs;

/// <summary>Where files stand, as the service that owns their state says.</summary>
public interface IFileStates
{
    /// <summary>The states of those of <paramref name="fileIds"/> that are known; throws when no answer comes.</summary>
    Task<IReadOnlyList<FileStatus>> FindAsync(IReadOnlyList<Guid> fileIds, CancellationToken cancellationToken);
}

/// <summary>Asks the orchestrator over the bus, in parts of at most <see cref="FileStatesQuery.MaxFiles"/> files.</summary>
public sealed class OrchestratorFileStates(IClientFactory clients) : IFileStates
{
    /// <summary>How long the orchestrator has to answer one part before the sweep gives up until its next pass.</summary>
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(30);

    private readonly IRequestClient<FileStatesQuery> _client = clients.CreateRequestClient<FileStatesQuery>(RequestTimeout.After(s: (int)AnswerTimeout.TotalSeconds));

    public async Task<IReadOnlyList<FileStatus>> FindAsync(IReadOnlyList<Guid> fileIds, CancellationToken cancellationToken)
    {
        var found = new List<FileStatus>(fileIds.Count);
        foreach (var part in fileIds.Chunk(FileStatesQuery.MaxFiles))
        {
            var answer = await _client.GetResponseBoundedAsync<FileStatesQuery, FileStatesAnswer>(new FileStatesQuery(part), AnswerTimeout, cancellationToken);
            found.AddRange(answer.Message.Files);
        }
        return found;
    }
}

public static class FileStatesExtensions
{
    /// <summary>Those of <paramref name="fileIds"/> that nothing more will happen to (archived, failed or cancelled), by id.</summary>
    public static async Task<Dictionary<Guid, FileStatus>> FindFinalAsync(this IFileStates states, IEnumerable<Guid> fileIds, CancellationToken cancellationToken) =>
        (await states.FindAsync([.. fileIds.Distinct()], cancellationToken)).Where(file => file.Final).ToDictionary(file => file.FileId);
}
