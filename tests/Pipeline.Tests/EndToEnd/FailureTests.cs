using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.EndToEnd;

public sealed class When_a_release_fails_its_first_attempt
{
    [Fact]
    public async Task Should_retry_from_stage_in_keep_both_attempts_logs_and_complete_once()
    {
        string[] arguments = ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}",
            "--histograms", "{jobdir}/histograms.json", "--attempt", "{attempt}", "--fail-attempts", "1"];
        var settings = arguments.Select((a, i) => KeyValuePair.Create($"Pipeline:Campaign:Release:Arguments:{i}", (string?)a)).ToDictionary();
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: settings);
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40));

        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(2);

        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        var files = await Eventually.Until(pipeline.AllFilesAsync, all => all.All(f => f.LogNames.Count >= 3), TimeSpan.FromSeconds(30), "logs of both attempts");
        foreach (var file in files)
        {
            Assert.Equal(2, file.Attempt);
            Assert.Equal(1, file.Failures);
            Assert.Null(file.FailureReason);
            Assert.Contains(file.History, h => h.State == "Staging" && h.Attempt == 2
                && h.Detail == "retry after: exit code 3: ERROR simulated failure on attempt 1 (fails up to attempt 1)");
            Assert.Single(file.History, h => h.Event == "FileReconstructed");
            Assert.Contains(file.LogNames, n => n.Contains("/attempt-1/job.log", StringComparison.Ordinal));
            Assert.Contains(file.LogNames, n => n.Contains("/attempt-2/histograms.json", StringComparison.Ordinal));
            Assert.Contains("simulated failure", await File.ReadAllTextAsync(pipeline.Areas.Logs.PathOf(file.LogNames.First(n => n.EndsWith("attempt-1/job.log", StringComparison.Ordinal)))), StringComparison.Ordinal);
        }
    }
}

public sealed class When_a_raw_file_does_not_match_its_catalogued_checksum
{
    [Fact]
    public async Task Should_fail_it_with_the_reason_after_the_attempt_budget_and_finish_the_others()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40)))[0];
        var corrupted = run.Files![0];
        // The archive holds different bytes than the data-acquisition system catalogued.
        var path = pipeline.Areas.Archive.PathOf(corrupted.Name!);
        var bytes = await File.ReadAllBytesAsync(path);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(path, bytes);

        await pipeline.IngestAsync([run]);
        await pipeline.WaitForFinalAsync(2);

        var files = await pipeline.AllFilesAsync();
        var failed = Assert.Single(files, f => f.CurrentState == "Failed");
        Assert.Equal(corrupted.Name, failed.LogicalName);
        Assert.StartsWith("checksum mismatch staging", failed.FailureReason, StringComparison.Ordinal);
        // The same mismatch on every attempt: quarantined after two rather than retried to the end of its budget.
        Assert.Equal((true, 2), (failed.Quarantined, failed.Failures));
        Assert.True(pipeline.Campaign.MaxAttempts > 2);
        Assert.False(pipeline.Areas.Cache.Exists($"prompt/{corrupted.Name}"), "a bad copy was left in the cache");
        Assert.Single(files, f => f.CurrentState == "Archived");
    }
}

public sealed class When_a_staged_copy_is_corrupted_in_the_cache
{
    [Fact]
    public async Task Should_catch_it_before_the_release_reads_it_and_stage_the_file_again_from_the_archive()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        Assert.Equal(System.Net.HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/pause", null)).StatusCode);
        // The pause reaches the worker within a second: no file may start reconstructing before it does.
        var pause = pipeline.Services.GetRequiredService<Pipeline.Production.Control.PauseState>();
        await Eventually.Until(() => Task.FromResult(pause.IsPaused("reconstruction")), paused => paused, TimeSpan.FromSeconds(30), "the reconstruction stage paused");
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40)))[0];
        await pipeline.IngestAsync([run]);
        var queued = await Eventually.Until(pipeline.AllFilesAsync, f => f.Count == 2 && f.All(x => x.CurrentState == "Queued"), TimeSpan.FromMinutes(2), "two files queued",
            f => string.Join(", ", f.Select(x => $"{x.LogicalName}={x.CurrentState}")));

        // A byte goes bad at rest, after the copy was verified on its way in.
        var victim = queued[0];
        Pipeline.Infrastructure.Faults.FaultInjection.FlipByte(pipeline.Areas.Cache.PathOf(victim.CachedName!));
        Assert.Equal(System.Net.HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/reconstruction/resume", null)).StatusCode);
        await pipeline.WaitForFinalAsync(2);

        var files = await pipeline.AllFilesAsync();
        Assert.All(files, f => Assert.Equal("Archived", f.CurrentState));
        var caught = files.Single(f => f.CorrelationId == victim.CorrelationId);
        Assert.Contains(caught.History, h => h.Detail?.StartsWith($"retry after: staged input {victim.CachedName} is corrupt: catalogued", StringComparison.Ordinal) == true);
        Assert.Equal(2, caught.History.Count(h => h.State == "Staging"));
        Assert.True((await pipeline.AuditAsync([run])).Complete);
    }
}

public sealed class When_a_raw_file_is_a_link_out_of_the_archive
{
    [Fact]
    public async Task Should_fail_its_staging_with_the_reason_and_read_nothing_from_outside()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40)))[0];
        var planted = run.Files![0];
        // The real bytes moved out of the archive, a link left in their place: the checksums still match.
        var path = pipeline.Areas.Archive.PathOf(planted.Name!);
        var outside = Path.Combine(pipeline.DataDirectory, "outside.raw");
        File.Move(path, outside);
        File.CreateSymbolicLink(path, outside);

        await pipeline.IngestAsync([run]);
        await pipeline.WaitForFinalAsync(2);

        var files = await pipeline.AllFilesAsync();
        var failed = Assert.Single(files, f => f.CurrentState == "Failed");
        Assert.Equal(planted.Name, failed.LogicalName);
        Assert.Contains("leads out of the area through the link", failed.FailureReason, StringComparison.Ordinal);
        Assert.False(pipeline.Areas.Cache.Exists($"prompt/{planted.Name}"), "bytes from outside the archive reached the cache");
        Assert.Single(files, f => f.CurrentState == "Archived");
    }
}

public sealed class When_a_run_ends
{
    [Fact]
    public async Task Should_merge_its_outputs_at_once_without_waiting_for_the_idle_flush()
    {
        // An idle flush far beyond the test's patience: only the run-end rule can close these merged files.
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Merger:FlushIdleSeconds"] = "3600",
            ["Pipeline:Merger:RunEndGraceSeconds"] = "0.2",
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 2, EventsPerFile: 50));

        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(8, TimeSpan.FromMinutes(2));

        Assert.True((await pipeline.AuditAsync(runs)).Complete);
    }
}

public sealed class When_every_reconstruction_slot_is_busy
{
    [Fact]
    public async Task Should_send_waiting_requests_back_to_the_queue_and_still_run_each_file_once()
    {
        // One slot, jobs of about a second, and requests that wait at most a second for the slot.
        string[] arguments = ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}", "--cpu-ms-per-event", "10"];
        var settings = arguments.Select((a, i) => KeyValuePair.Create($"Pipeline:Campaign:Release:Arguments:{i}", (string?)a)).ToDictionary();
        settings["Pipeline:Reconstruction:Slots"] = "1";
        settings["Pipeline:Reconstruction:SlotWaitSeconds"] = "1";
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: settings);
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 100));

        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);

        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        Assert.All(await pipeline.AllFilesAsync(), f =>
        {
            Assert.Equal(1, f.Attempt);
            Assert.Single(f.History, h => h.Event == "FileReconstructed");
        });
    }
}

public sealed class When_a_merged_file_is_corrupted_before_it_is_archived
{
    [Fact]
    public async Task Should_catch_it_make_it_again_from_its_inputs_and_archive_only_sound_bytes()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        var (merged, run) = await CorruptOneMergedFileAsync(pipeline);
        await pipeline.WaitForFinalAsync(2);

        var files = await pipeline.AllFilesAsync();
        Assert.All(files, f => Assert.Equal("Archived", f.CurrentState));
        Assert.True((await merges.GetMergedFileAsync(merged.Name, CancellationToken.None))!.Archived);
        // What the archive holds is the file as it was first made: its record, manifest and checksum stand.
        var entry = Assert.Single(await pipeline.Services.GetRequiredService<ICatalog>().FindAsync($"merged/{merged.Name}", CancellationToken.None));
        Assert.Equal(merged.Adler32, entry.Adler32);
        var (size, adler) = await pipeline.Areas.Archive.ChecksumAsync($"merged/{merged.Name}", CancellationToken.None);
        Assert.Equal((merged.Size, merged.Adler32), (size, Pipeline.Infrastructure.Checksums.Adler32Checksum.Format(adler)));
        Assert.True((await pipeline.AuditAsync([run])).Complete);
        // The inputs were kept for the remake only: once archived, the unmerged area holds none of them.
        await Eventually.Until(() => Task.FromResult(Directory.EnumerateFiles(((LocalArea)pipeline.Areas.Unmerged).RootPath, "*", SearchOption.AllDirectories).ToList()),
            left => left.Count == 0, TimeSpan.FromSeconds(30), "the unmerged area emptied of merged inputs", left => string.Join(", ", left));
    }

    [Fact]
    public async Task Should_raise_an_alert_and_keep_it_unarchived_when_its_inputs_are_gone()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        var (merged, _) = await CorruptOneMergedFileAsync(pipeline, before: () =>
        {
            foreach (var input in Directory.EnumerateFiles(((LocalArea)pipeline.Areas.Unmerged).RootPath, "*.evt", SearchOption.AllDirectories))
            {
                File.Delete(input);
            }
        });

        var health = pipeline.Services.GetRequiredService<IHealthStore>();
        var alert = await Eventually.Until(async () => (await health.ListAlertsAsync(activeOnly: true, 100, CancellationToken.None)).FirstOrDefault(a => a.Kind == "merged-file-corrupt"),
            a => a is not null, TimeSpan.FromMinutes(2), "a merged-file-corrupt alert");
        Assert.Contains(merged.Name, alert!.Message, StringComparison.Ordinal);
        Assert.Contains("no longer in the unmerged area", alert.Message, StringComparison.Ordinal);
        Assert.False((await merges.GetMergedFileAsync(merged.Name, CancellationToken.None))!.Archived);
        Assert.Empty(await pipeline.Services.GetRequiredService<ICatalog>().FindAsync($"merged/{merged.Name}", CancellationToken.None));
    }

    /// <summary>Runs two files to the merger with the archiver paused, flips a byte of one merged file, and resumes the archiver.</summary>
    private static async Task<(MergedFileRecord Merged, RunRecorded Run)> CorruptOneMergedFileAsync(PipelineUnderTest pipeline, Action? before = null)
    {
        Assert.Equal(System.Net.HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/archiver/pause", null)).StatusCode);
        var pause = pipeline.Services.GetRequiredService<Pipeline.Production.Control.PauseState>();
        await Eventually.Until(() => Task.FromResult(pause.IsPaused("archiver")), paused => paused, TimeSpan.FromSeconds(30), "the archiver paused");
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40)))[0];
        await pipeline.IngestAsync([run]);
        await Eventually.Until(pipeline.AllFilesAsync, f => f.Count == 2 && f.All(x => x.CurrentState == "Merged"), TimeSpan.FromMinutes(2), "two files merged",
            f => string.Join(", ", f.Select(x => $"{x.LogicalName}={x.CurrentState}")));
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        var merged = (await merges.ListUnarchivedAsync(DateTimeOffset.MaxValue, CancellationToken.None))[0];
        Pipeline.Infrastructure.Faults.FaultInjection.FlipByte(pipeline.Areas.Output.PathOf(merged.Name));
        before?.Invoke();
        Assert.Equal(System.Net.HttpStatusCode.Accepted, (await pipeline.Http.PostAsync("/api/stages/archiver/resume", null)).StatusCode);
        return (merged, run);
    }
}
