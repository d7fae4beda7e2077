using Pipeline.Contracts;
using Pipeline.Reconstruction;
using Pipeline.SampleExperiment;

namespace Pipeline.Tests.Support;

/// <summary>
/// The sample reconstruction run inside the test process instead of as a child process: the same code on the
/// same files, for tests that push thousands of files through and would otherwise spend their time starting processes.
/// It reads the sample release's argument list as the real program does.
/// </summary>
public sealed class InProcessSampleRelease : IReleaseRunner
{
    public async Task<ReleaseOutcome> RunAsync(ReleaseJob job, CancellationToken cancellationToken)
    {
        var options = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 1; i + 1 < job.Arguments.Count; i += 2)
        {
            options[job.Arguments[i].TrimStart('-')] = job.Arguments[i + 1];
        }
        await using var log = new StreamWriter(job.LogPath);
        if (job.Arguments is not ["reconstruct", ..])
        {
            await log.WriteLineAsync($"ERROR unsupported command {string.Join(' ', job.Arguments)}");
            return new ReleaseOutcome(2, false, "", "unsupported command");
        }
        await SampleReconstruction.RunAsync(options["input"], options["outdir"], ReleaseManifest.ParseDatasets(options["datasets"]), null, 0, log, cancellationToken);
        return new ReleaseOutcome(0, false, "", null);
    }
}
