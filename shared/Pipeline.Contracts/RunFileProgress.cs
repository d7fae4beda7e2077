namespace Pipeline.Contracts;

/// <summary>
/// A file of a run may still produce outputs (<see cref="Open"/>: registered, or retried), or no longer can (closed:
/// reconstructed, failed or cancelled), with how many outputs of each dataset it produced. Published by the file's
/// saga whenever that changes, so that the merger keeps its own ledger of each run's files and knows when a run is
/// complete without reading the sagas. <see cref="Sequence"/> orders the reports of one file: a later one wins.
/// </summary>
public sealed record RunFileProgress(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    long Sequence,
    bool Open,
    IReadOnlyList<DatasetOutputs> Outputs) : IFileMessage;

/// <summary>How many outputs of one dataset a file produced.</summary>
public sealed record DatasetOutputs(string Dataset, int Outputs);

/// <summary>
/// The merger has waited a while on a run whose files its ledger still counts as open: every file of the run reports
/// its state again. A report lost between a saga's save and its publish (a crash just then) is made good this way.
/// </summary>
public sealed record ResendRunFileProgress(string Campaign, int Run);
