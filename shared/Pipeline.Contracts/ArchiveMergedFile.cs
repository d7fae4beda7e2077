namespace Pipeline.Contracts;

/// <summary>Write a merged file to the archive, verify it, and catalog it.</summary>
public sealed record ArchiveMergedFile(
    string MergedName,
    string Dataset,
    string Campaign,
    long Size,
    string Adler32,
    long Events,
    IReadOnlyList<MergedSource> Sources);

/// <summary>A reconstruction output that went into a merged file, and the raw file (and its section) it came from.</summary>
public sealed record MergedSource(Guid FileId, int Run, string Stream, string RawName, string OutputId, int Section = 0);
