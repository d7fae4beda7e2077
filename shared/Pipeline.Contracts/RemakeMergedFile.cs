namespace Pipeline.Contracts;

/// <summary>
/// The merged file waiting in the output area no longer matches its recorded size and checksum (found by the archiver
/// before any copy of it was catalogued): make it again from the outputs it was merged from, which the merger keeps
/// until the file is archived.
/// </summary>
public sealed record RemakeMergedFile(string MergedName, string Campaign, string Dataset, string Reason);
