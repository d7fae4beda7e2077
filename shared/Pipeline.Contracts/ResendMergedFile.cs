namespace Pipeline.Contracts;

/// <summary>
/// The archiver asks the merger to send a dataset's merged file number <see cref="Sequence"/> again: later files of the
/// dataset have arrived and this one has not (its request was lost, with a merger stopped between its commit and its
/// publish, say), and the dataset's files reach the archive in their order.
/// </summary>
public sealed record ResendMergedFile(string Campaign, string Dataset, long Sequence);
