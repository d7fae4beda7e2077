using Pipeline.Contracts;

namespace Pipeline.Production.State;

/// <summary>
/// The archiver's own record of the merged files it was asked to write (fed by <see cref="ArchiveMergedFile"/>, which
/// carries all it keeps), per dataset in the order the merger made them (<see cref="QueuedMergedFile.Sequence"/>): what
/// it writes next, what awaits a tape copy, what is archived. It reads nothing of the merger's.
/// </summary>
public interface IArchiveQueue
{
    /// <summary>Adds a file asked for; one known already keeps its record (and its state). Returns the record as stored.</summary>
    Task<QueuedMergedFile> EnqueueAsync(QueuedMergedFile file, CancellationToken cancellationToken);

    Task<QueuedMergedFile?> GetAsync(string name, CancellationToken cancellationToken);

    /// <summary>A dataset's files numbered <paramref name="fromSequence"/> and after, in their order.</summary>
    Task<IReadOnlyList<QueuedMergedFile>> ListFromAsync(string campaign, string dataset, long fromSequence, int limit, CancellationToken cancellationToken);

    /// <summary>The highest number of the dataset's files written (awaiting a tape copy, or archived); 0 when none is.</summary>
    Task<long> LastWrittenAsync(string campaign, string dataset, CancellationToken cancellationToken);

    /// <summary>Moves a file on (never back): written, then archived.</summary>
    Task MarkAsync(string name, ArchivingState state, CancellationToken cancellationToken);
}

/// <summary>Where a queued merged file stands.</summary>
public enum ArchivingState
{
    /// <summary>Asked for, not yet written.</summary>
    Waiting = 0,

    /// <summary>Every copy written and verified; a nearline copy's tape copy is awaited.</summary>
    Written = 1,

    /// <summary>Archived: every copy written, verified and on tape where the archive is nearline.</summary>
    Archived = 2,
}

/// <summary>A merged file as the archiver keeps it. <see cref="Sequence"/> 0 stands for a file merged before files were numbered.</summary>
public sealed record QueuedMergedFile(
    string Name,
    string Campaign,
    string Dataset,
    long Sequence,
    long Size,
    string Adler32,
    long Events,
    DateTimeOffset MergedAt,
    string? Manifest,
    IReadOnlyList<MergedSource> Sources,
    ArchivingState State = ArchivingState.Waiting)
{
    public static QueuedMergedFile Of(ArchiveMergedFile request, DateTimeOffset receivedAt) =>
        new(request.MergedName, request.Campaign, request.Dataset, request.Sequence, request.Size, request.Adler32, request.Events,
            request.MergedAt ?? receivedAt, request.Manifest, request.Sources);

    public ArchiveMergedFile ToRequest() => new(Name, Dataset, Campaign, Size, Adler32, Events, Sources, Sequence, MergedAt, Manifest);
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class ArchiveQueueAccess
{
    extension(StoreBackend backend)
    {
        public IArchiveQueue ArchiveQueue => backend.Get<IArchiveQueue>();
    }
}
