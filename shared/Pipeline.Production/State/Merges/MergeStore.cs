namespace Pipeline.Production.State;

/// <summary>The merger's durable buffer: outputs waiting per dataset, and the merged files made from them.</summary>
public interface IMergeStore
{
    /// <summary>Adds an output to its dataset's buffer, or returns the stored record if it is already known.</summary>
    Task<PendingOutput> AddOutputAsync(PendingOutput output, CancellationToken cancellationToken);

    Task<IReadOnlyList<DatasetBuffer>> ListBuffersAsync(CancellationToken cancellationToken);

    /// <summary>Pending outputs of a dataset in (run, section, stream) order.</summary>
    Task<IReadOnlyList<PendingOutput>> ListPendingAsync(string campaign, string dataset, int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Records a merged file and marks its outputs as merged, all or nothing, numbering it after its dataset's files
    /// (<see cref="MergedFileRecord.Sequence"/>: 1, 2, 3, … in the order they were committed). Returns the record as
    /// stored, or null (changing nothing) if any of the outputs was merged meanwhile by someone else.
    /// </summary>
    Task<MergedFileRecord?> CommitMergeAsync(MergedFileRecord merged, IReadOnlyList<string> outputIds, CancellationToken cancellationToken);

    Task<MergedFileRecord?> GetMergedFileAsync(string name, CancellationToken cancellationToken);

    /// <summary>A dataset's merged file by its number in the dataset (<see cref="MergedFileRecord.Sequence"/>), or null.</summary>
    Task<MergedFileRecord?> GetMergedFileAsync(string campaign, string dataset, long sequence, CancellationToken cancellationToken);

    Task<IReadOnlyList<PendingOutput>> ListOutputsOfAsync(string mergedName, CancellationToken cancellationToken);

    /// <summary>Merged files not yet archived that were last touched before <paramref name="updatedBefore"/>.</summary>
    Task<IReadOnlyList<MergedFileRecord>> ListUnarchivedAsync(DateTimeOffset updatedBefore, CancellationToken cancellationToken);

    /// <summary>Merged files not yet archived, per campaign (campaigns with none are left out).</summary>
    Task<IReadOnlyDictionary<string, int>> CountUnarchivedAsync(CancellationToken cancellationToken);

    /// <summary>The merger's own mark, set when the archive reports the file's outputs archived (<c>OutputsArchived</c>).</summary>
    Task MarkArchivedAsync(string mergedName, CancellationToken cancellationToken);

    /// <summary>Per run from <paramref name="fromRun"/> to <paramref name="toRun"/>, how many outputs of a dataset the merger has received (merged or waiting).</summary>
    Task<IReadOnlyDictionary<int, int>> CountReceivedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken);

    /// <summary>The highest run with an output of the dataset already merged (null if none): every run up to it was complete when it was merged.</summary>
    Task<int?> HighestMergedRunAsync(string campaign, string dataset, CancellationToken cancellationToken);
}

public sealed record PendingOutput(
    string OutputId,
    Guid FileId,
    string Campaign,
    string Dataset,
    int Run,
    string Stream,
    int Section,
    string RawName,
    string Name,
    long Size,
    string Adler32,
    long Events,
    DateTimeOffset AddedAt,
    string? MergedName,
    string? RawAdler32 = null);

public sealed record DatasetBuffer(string Campaign, string Dataset, int Outputs, long Bytes, DateTimeOffset OldestAddedAt, DateTimeOffset NewestAddedAt);

public sealed record MergedFileRecord(
    string Name,
    string Campaign,
    string Dataset,
    long Size,
    string Adler32,
    long Events,
    bool Archived,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    string? Manifest = null,
    long Sequence = 0);

/// <summary>The concern's store among the backend's, by name.</summary>
public static class MergeStoreAccess
{
    extension(StoreBackend backend)
    {
        public IMergeStore Merges => backend.Get<IMergeStore>();
    }
}
