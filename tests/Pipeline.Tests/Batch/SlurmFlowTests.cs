using System.Net.Http.Json;
using Pipeline.Api;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Batch;

/// <summary>The whole pipeline with every reconstruction a job of a real one-node Slurm cluster.</summary>
public sealed class When_reconstruction_runs_on_slurm(SlurmCluster cluster) : IClassFixture<SlurmCluster>
{
    private static Dictionary<string, string?> Settings(SlurmCluster cluster, string prefix) => new()
    {
        ["Pipeline:Reconstruction:Executor"] = "Slurm",
        ["Pipeline:Reconstruction:Slurm:ConfigFile"] = cluster.ConfigFile,
        ["Pipeline:Reconstruction:Slurm:PollSeconds"] = "0.3",
        ["Pipeline:Reconstruction:Slurm:JobNamePrefix"] = prefix,
        ["Pipeline:Reconstruction:Slurm:MemoryMegabytes"] = "100",
        ["Pipeline:Reconstruction:Slots"] = "4",
    };

    [SkippableFact]
    public async Task Should_retry_the_jobs_of_a_failed_node_when_it_returns_without_spending_their_files_attempts()
    {
        cluster.Require();
        var prefix = $"nf{Guid.NewGuid():N}"[..10];
        var settings = Settings(cluster, prefix);
        // Jobs that wait while the hold file exists, so that the node fails under them, then run the sample release.
        using var folder = new TempDirectory();
        var hold = Path.Combine(folder.Path, "hold");
        File.WriteAllText(hold, "");
        var release = Path.Combine(folder.Path, "wait-then-run.sh");
        File.WriteAllText(release, "#!/bin/bash\nwhile [ -e \"$1\" ]; do sleep 0.2; done\nshift\nexec \"$@\"\n");
        File.SetUnixFileMode(release, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        settings["Pipeline:Campaign:Release:Executable"] = release;
        string[] arguments = [hold, "{appdir}/Pipeline.SampleExperiment", "reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}"];
        for (var i = 0; i < arguments.Length; i++)
        {
            settings[$"Pipeline:Campaign:Release:Arguments:{i}"] = arguments[i];
        }
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: settings);
        var slurm = cluster.Client(prefix);
        try
        {
            var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 400));
            await pipeline.IngestAsync(runs);
            await Eventually.Until(() => slurm.ListAsync(CancellationToken.None), jobs => jobs.Count(j => j.State == "RUNNING") == 4,
                TimeSpan.FromSeconds(60), "every file's job running", jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));

            await cluster.StopNodeAsync();
            // The controller declares the silent node down after SlurmdTimeout (30 s) and some pings.
            await Eventually.Until(() => slurm.ListAsync(CancellationToken.None), jobs => jobs.Count(j => j.State == "NODE_FAIL") == 4,
                TimeSpan.FromSeconds(120), "every job failed with its node", jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));
            File.Delete(hold);
            await cluster.StartNodeAsync();
            await pipeline.WaitForFinalAsync(4);

            var files = await pipeline.AllFilesAsync();
            Assert.All(files, f => Assert.Equal((FileStates.Archived, 0), (f.CurrentState, f.Failures)));
            var jobs = await slurm.ListAsync(CancellationToken.None);
            // Slurm's own list: for each file one job lost with the node, then one completed; the loss was the site's.
            foreach (var file in files)
            {
                var states = jobs.Where(j => slurm.Owner(j.Name)!.Value.FileId == file.CorrelationId).OrderBy(j => j.Id).Select(j => j.State);
                Assert.Equal(["NODE_FAIL", "COMPLETED"], states);
                Assert.Equal(1, file.SiteFailures);
            }
        }
        finally
        {
            File.Delete(hold);
            await cluster.StartNodeAsync();
        }
    }

    [SkippableFact]
    public async Task Should_take_a_paused_campaigns_queued_jobs_out_of_the_queue_and_submit_them_again_after_it_resumes()
    {
        cluster.Require();
        var prefix = $"ps{Guid.NewGuid():N}"[..10];
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: Settings(cluster, prefix));
        var slurm = cluster.Client(prefix);
        await cluster.FailNodeAsync();
        try
        {
            var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 200));
            await pipeline.IngestAsync(runs);
            await Eventually.Until(() => slurm.ListAsync(CancellationToken.None), jobs => jobs.Count(j => j.State == "PENDING") >= 2,
                TimeSpan.FromSeconds(60), "jobs waiting in the queue", jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));

            (await pipeline.Http.PostAsync(new Uri($"api/campaigns/{pipeline.Campaign.Name}/pause", UriKind.Relative), null)).EnsureSuccessStatusCode();
            var cancelled = await Eventually.Until(() => slurm.ListAsync(CancellationToken.None),
                jobs => jobs.Count > 0 && jobs.All(j => j.State == "CANCELLED"), TimeSpan.FromSeconds(60), "the queued jobs cancelled",
                jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));
            (await pipeline.Http.PostAsync(new Uri($"api/campaigns/{pipeline.Campaign.Name}/resume", UriKind.Relative), null)).EnsureSuccessStatusCode();
            await cluster.ResumeNodeAsync();

            await pipeline.WaitForFinalAsync(4);
            var files = await pipeline.AllFilesAsync();
            Assert.All(files, f => Assert.Equal((FileStates.Archived, 0), (f.CurrentState, f.Failures)));
            var jobs = await slurm.ListAsync(CancellationToken.None);
            Assert.Equal(files.Select(f => f.CorrelationId).Order(), jobs.Where(j => j.State == "COMPLETED").Select(j => slurm.Owner(j.Name)!.Value.FileId).Order());
            var one = files.First(f => f.CorrelationId == slurm.Owner(cancelled[0].Name)!.Value.FileId);
            // Its cancelled job spent none of its attempts; it waited for the campaign and was submitted again.
            Assert.Equal(1, one.SiteFailures);
            Assert.Contains(one.History, h => h.Event == "ReconstructionFailed" && h.Detail == $"held: campaign {pipeline.Campaign.Name} is paused");
        }
        finally
        {
            await cluster.ResumeNodeAsync();
        }
    }

    [SkippableFact]
    public async Task Should_reconstruct_every_file_once_by_a_slurm_job_and_retry_one_the_site_cancelled_without_spending_its_attempts()
    {
        cluster.Require();
        var prefix = $"e2e{Guid.NewGuid():N}"[..11];
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: Settings(cluster, prefix));
        var slurm = cluster.Client(prefix);
        // The node is down while the files arrive, so their jobs wait in the queue, where the site cancels one.
        await cluster.FailNodeAsync();
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 200));
        await pipeline.IngestAsync(runs);
        var pending = await Eventually.Until(() => slurm.ListAsync(CancellationToken.None), jobs => jobs.Count(j => j.State == "PENDING") >= 2,
            TimeSpan.FromSeconds(60), "jobs waiting in the queue", jobs => string.Join(", ", jobs.Select(j => $"{j.Name}={j.State}")));
        var cancelled = pending.First(j => j.State == "PENDING");
        await cluster.RunAsync("scancel", cancelled.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await cluster.ResumeNodeAsync();

        await pipeline.WaitForFinalAsync(4);

        var audit = await pipeline.AuditAsync(runs);
        Assert.True(audit.Complete, $"lost {audit.Events!.EventsLost}, duplicated {audit.Events!.EventsDuplicated}, failed {audit.FailedRawFiles}");
        var files = await pipeline.AllFilesAsync();
        Assert.All(files, f => Assert.Equal(FileStates.Archived, f.CurrentState));
        // Slurm's own list: one completed job per file, and the one the site cancelled.
        var jobs = await slurm.ListAsync(CancellationToken.None);
        Assert.Equal(files.Select(f => f.CorrelationId).Order(), jobs.Where(j => j.State == "COMPLETED").Select(j => slurm.Owner(j.Name)!.Value.FileId).Order());
        Assert.Equal([cancelled.Id], jobs.Where(j => j.State != "COMPLETED").Select(j => j.Id));
        var retried = files.Single(f => f.CorrelationId == slurm.Owner(cancelled.Name)!.Value.FileId);
        Assert.Equal((0, 1), (retried.Failures, retried.SiteFailures));
        Assert.Contains(retried.History, h => h.Detail?.Contains("the site failed batch job", StringComparison.Ordinal) == true);

        // The campaign's run times are measured, and until enough are its jobs get the release's limit.
        var runTimes = await Eventually.Until(
            () => pipeline.Http.GetFromJsonAsync<CampaignRunTimes>(new Uri($"api/campaigns/{pipeline.Campaign.Name}/run-times", UriKind.Relative))!,
            r => r!.Files == files.Count, TimeSpan.FromSeconds(30), "every run time recorded", r => $"{r?.Files} files");
        Assert.Equal(pipeline.Campaign.Release.TimeoutSeconds, runTimes!.LimitSeconds);
        Assert.Equal(files.Count, runTimes.Buckets.Sum(b => b.Files));
        Assert.NotNull(runTimes.MedianSeconds);
    }
}
