namespace Pipeline.Production.Jobs;

/// <summary>Where a job's logs and histograms are kept in the logs area.</summary>
public static class JobLogFolders
{
    /// <summary>The folder of one attempt's logs: <c>campaign/runNNNNNN/stream/file/attempt-N</c>.</summary>
    public static string Of(string campaign, int run, string stream, Guid fileId, int attempt) =>
        $"{campaign}/run{run:D6}/{stream}/{fileId:N}/attempt-{attempt}";
}
