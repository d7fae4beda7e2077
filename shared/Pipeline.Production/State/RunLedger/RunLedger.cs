using Pipeline.Contracts;

namespace Pipeline.Production.State;

/// <summary>
/// The merger's ledger of each run's files, kept from the sagas' <see cref="RunFileProgress"/> reports: which files
/// may still produce outputs, and how many outputs of each dataset the others produced. It is what tells the merger
/// that a run has ended and that every output of it has arrived, without reading the sagas.
/// </summary>
public interface IRunLedger
{
    /// <summary>Records a file's report; one older than the file's last recorded report changes nothing.</summary>
    Task RecordAsync(RunFileProgress progress, CancellationToken cancellationToken);

    /// <summary>
    /// For each of the given runs of a campaign: how many files the ledger knows, and how many are past
    /// reconstruction (reconstructed, failed or cancelled) — when all are, the run has ended for merging.
    /// </summary>
    Task<IReadOnlyDictionary<int, RunProgress>> RunProgressAsync(string campaign, IReadOnlyCollection<int> runs, CancellationToken cancellationToken);

    /// <summary>
    /// The lowest run of a campaign with a file that may still produce outputs (null if none): outputs of earlier
    /// runs are all known, so merging them keeps a dataset in run order.
    /// </summary>
    Task<int?> OldestOpenRunAsync(string campaign, CancellationToken cancellationToken);

    /// <summary>
    /// Per run from <paramref name="fromRun"/> to <paramref name="toRun"/>, how many outputs of a dataset the campaign's
    /// files reported (what the merger must receive before the run is complete); runs with none are left out.
    /// </summary>
    Task<IReadOnlyDictionary<int, int>> CountReportedOutputsAsync(string campaign, string dataset, int fromRun, int toRun, CancellationToken cancellationToken);
}

/// <summary>A run's files as the merger's ledger knows them, and how many of those are past reconstruction.</summary>
public sealed record RunProgress(int Files, int PastReconstruction)
{
    public bool Ended => PastReconstruction == Files;
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class RunLedgerAccess
{
    extension(StoreBackend backend)
    {
        public IRunLedger RunLedger => backend.Get<IRunLedger>();
    }
}
