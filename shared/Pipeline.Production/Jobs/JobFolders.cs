using System.Globalization;

namespace Pipeline.Production.Jobs;

/// <summary>
/// Where a reconstruction attempt's files are kept, in scratch (the job's folder) and in the unmerged area (its outputs):
/// <c>jobs/campaign/runNNNNNN/file/attempt-N</c>, each execution of the attempt in a folder of its own inside. The
/// attempt folder is also the name its room is reserved under in both areas' ledgers.
/// </summary>
public static class JobFolders
{
    public const string Root = "jobs";

    /// <summary>How many levels an attempt folder has (<c>jobs</c>, campaign, run, file, attempt).</summary>
    public const int AttemptDepth = 5;

    public static string OfAttempt(string campaign, int run, Guid fileId, int attempt) =>
        $"{Root}/{campaign}/run{run:D6}/{fileId:N}/attempt-{attempt}";

    /// <summary>The file a file's folder (<c>jobs/campaign/runNNNNNN/file</c>) is of; false for any other name.</summary>
    public static bool TryParseFileFolder(string name, out Guid fileId)
    {
        var parts = name.Split('/');
        fileId = Guid.Empty;
        return parts.Length == AttemptDepth - 1 && parts[0] == Root && Guid.TryParseExact(parts[3], "N", out fileId);
    }

    /// <summary>The file and attempt a name at or below an attempt folder belongs to; false for any other name.</summary>
    public static bool TryParse(string name, out Guid fileId, out int attempt)
    {
        var parts = name.Split('/');
        attempt = 0;
        fileId = Guid.Empty;
        return parts.Length >= AttemptDepth && parts[0] == Root
            && Guid.TryParseExact(parts[3], "N", out fileId)
            && parts[4].StartsWith("attempt-", StringComparison.Ordinal)
            && int.TryParse(parts[4].AsSpan("attempt-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out attempt);
    }
}
