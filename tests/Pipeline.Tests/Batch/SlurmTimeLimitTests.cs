using Pipeline.Reconstruction;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Batch;

/// <summary>
/// A job that runs past its time limit ends as Slurm's TIMEOUT (Slurm's least limit is a minute, and it looks every
/// 30 s: this test takes one to two minutes, on a cluster of its own so the other batch tests run meanwhile).
/// </summary>
public sealed class When_a_slurm_job_runs_past_its_time_limit(SlurmCluster cluster) : IClassFixture<SlurmCluster>, IDisposable
{
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    [SkippableFact]
    public async Task Should_end_as_timed_out_with_the_jobs_own_state()
    {
        cluster.Require();
        var slurm = cluster.Client();
        var watch = await cluster.WatchAsync(slurm);
        try
        {
            var runner = cluster.Runner(slurm, watch);
            var job = new ReleaseJob("/bin/sleep", ["600"], _folder.Path, Path.Combine(_folder.Path, ReconstructionWorker.JobLogName), TimeSpan.FromSeconds(30), Guid.NewGuid(), 1);

            var outcome = await runner.RunAsync(job, CancellationToken.None);

            Assert.Equal((true, "TIMEOUT", false, (int?)null), (outcome.TimedOut, outcome.BatchState, outcome.SiteFailure, outcome.ExitCode));
        }
        finally
        {
            await watch.StopAsync(CancellationToken.None);
            watch.Dispose();
        }
    }
}
