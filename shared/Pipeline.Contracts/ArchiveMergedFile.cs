namespace Pipeline.Contracts;

/// <summary>
/// Write a merged file to the archive, verify it, and catalog it. It carries everything the archiver keeps of the file
/// (the archiver reads nothing of the merger's): its place in its dataset (<see cref="Sequence"/>: the dataset's files
/// reach the archive in this order), when it was made, and its manifest for the catalog.
/// </summary>
public sealed record ArchiveMergedFile(
    string MergedName,
    string Dataset,
    string Campaign,
    long Size,
    string Adler32,
    long Events,
    IReadOnlyList<MergedSource> Sources,
    long Sequence = 0,
    DateTimeOffset? MergedAt = null,
    string? Manifest = null);

/// <summary>A reconstruction output that went into a merged file, and the raw file (and its section) it came from.</summary>
public sealed record MergedSource(Guid FileId, int Run, string Stream, string RawName, string OutputId, int Section = 0);
