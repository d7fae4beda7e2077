namespace Pipeline.Contracts;

/// <summary>
/// Run the campaign's approved release on one staged raw file, or, for a Monte Carlo campaign (no
/// <see cref="CachedName"/>), generate <see cref="Events"/> events under the run's conditions and reconstruct them.
/// <see cref="InputSize"/> and <see cref="InputAdler32"/> are the raw file's as catalogued: the staged copy is
/// checked against them before the release reads it. <see cref="RunConditions"/> are the run's recorded conditions
/// ("name=value,..."), carried so that the worker reads nobody's tables.
/// </summary>
public sealed record ReconstructFile(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    int Section,
    string? CachedName,
    string ReleaseVersion,
    IReadOnlyList<DatasetSelection> Datasets,
    int? TimeoutSeconds = null,
    string? CalibrationTag = null,
    long Events = 0,
    long InputSize = 0,
    string? InputAdler32 = null,
    string? RunConditions = null) : IFileAttemptMessage;

/// <summary>An output dataset and the trigger bits that select events into it.</summary>
public sealed record DatasetSelection(string Name, uint TriggerMask);
