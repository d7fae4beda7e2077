namespace Pipeline.Contracts;

/// <summary>Run the campaign's approved release on one staged raw file.</summary>
public sealed record ReconstructFile(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    int Attempt,
    int Section,
    string CachedName,
    string ReleaseVersion,
    IReadOnlyList<DatasetSelection> Datasets,
    int? TimeoutSeconds = null) : IFileMessage;

/// <summary>An output dataset and the trigger bits that select events into it.</summary>
public sealed record DatasetSelection(string Name, uint TriggerMask);
