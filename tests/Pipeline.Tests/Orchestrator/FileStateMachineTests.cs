using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.Orchestrator;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;

namespace Pipeline.Tests.Orchestrator;

public sealed class When_a_file_goes_through_every_stage : IAsyncLifetime
{
    private FileStateMachineHarness _machine = null!;

    public async Task InitializeAsync() => _machine = await FileStateMachineHarness.StartAsync();

    public async Task DisposeAsync() => await _machine.DisposeAsync();

    [Fact]
    public void Should_have_exactly_the_states_the_stores_and_stages_know_by_name()
    {
        var states = _machine.Machine.States.Select(s => s.Name).Where(n => n is not "Initial" and not "Final").ToHashSet();

        Assert.Equal(Pipeline.Production.State.FileStates.All.ToHashSet(), states);
    }

    [Fact]
    public async Task Should_stage_reconstruct_merge_and_archive_it_recording_each_step()
    {
        var registration = FileStateMachineHarness.Registration();
        var id = registration.FileId;

        await _machine.Publish(registration);
        Assert.True(await _machine.Harness.Published.Any<StageFile>(x => x.Context.Message.FileId == id && x.Context.Message.Attempt == 1));

        await _machine.Publish(new FileStaged(id, 1000, "physics", "prompt", 1, "prompt/raw.raw", 1234, "0a0b0c0d"));
        var staged = await _machine.WaitForState(id, "Staged");
        Assert.Equal("prompt/raw.raw", staged.CachedName);
        // Staged files wait for the dispatcher's slot: nothing is sent to reconstruction before.
        Assert.False((await _machine.Claim(staged, 1, "worker-0")).Granted);

        var queued = await _machine.Dispatch(id);
        Assert.True(await _machine.Harness.Published.Any<ReconstructFile>(x => x.Context.Message.FileId == id && x.Context.Message.Datasets.Count == 4
            && x.Context.Message.ReleaseVersion == "sample-1.0"));
        var claim = await _machine.Claim(queued, 1, "worker-1");
        Assert.True(claim.Granted);
        await _machine.WaitForState(id, "Reconstructing");

        var outputs = new[] { FileStateMachineHarness.Output(id, 1, "muon"), FileStateMachineHarness.Output(id, 1, "jet") };
        await _machine.Publish(new FileReconstructed(id, 1000, "physics", "prompt", 1, "worker-1", outputs, 2.5));
        Assert.True(await _machine.Harness.Published.Any<MergeOutput>(x => x.Context.Message.Output.Dataset == "muon"));
        Assert.True(await _machine.Harness.Published.Any<MergeOutput>(x => x.Context.Message.Output.Dataset == "jet"));
        await _machine.WaitForState(id, "Reconstructed");

        await _machine.Publish(new OutputsMerged(id, 1000, "physics", "prompt", "m-muon", [outputs[0].OutputId]));
        await _machine.WaitFor(id, s => s.Outputs.Count(o => o.MergedName is not null) == 1, "one output merged");
        await _machine.Publish(new OutputsMerged(id, 1000, "physics", "prompt", "m-jet", [outputs[1].OutputId]));
        await _machine.WaitForState(id, "Merged");

        await _machine.Publish(new OutputsArchived(id, 1000, "physics", "prompt", "m-muon", [outputs[0].OutputId]));
        await _machine.Publish(new OutputsArchived(id, 1000, "physics", "prompt", "m-jet", [outputs[1].OutputId]));
        var archived = await _machine.WaitForState(id, "Archived");

        Assert.Null(archived.Deadline);
        Assert.Equal(
            ["Registered", "Staging", "Staged", "Queued", "Reconstructing", "Reconstructed", "Merged", "Archived"],
            archived.History.Select(h => h.State).Distinct());
        Assert.Single(archived.History, h => h.Event == "FileReconstructed");
        // The staged copy is given back when the file is reconstructed, and again when it is archived, in case the
        // first request was lost to a broker failing just after the saga was saved.
        await _machine.Harness.InactivityTask;
        Assert.Equal(2, _machine.Harness.Published.Select<DiscardStagedFile>().Count(x => x.Context.Message.FileId == id && x.Context.Message.CachedName == "prompt/raw.raw"));
    }

    [Fact]
    public async Task Should_register_a_file_once_however_often_it_is_announced()
    {
        var registration = FileStateMachineHarness.Registration();
        await _machine.Publish(registration);
        await _machine.Publish(registration);
        await _machine.Publish(registration);
        await _machine.WaitForState(registration.FileId, "Staging");
        await _machine.Harness.InactivityTask;

        Assert.Single(_machine.Harness.Published.Select<StageFile>());
        var file = await _machine.Store.LoadAsync(registration.FileId, CancellationToken.None);
        Assert.Equal(1, file!.Attempt);
    }

    [Fact]
    public async Task Should_give_back_a_copy_staged_again_after_its_reconstruction_ended()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        await _machine.Publish(new FileReconstructed(file.CorrelationId, 1000, "physics", "prompt", file.Attempt, "worker-1",
            [FileStateMachineHarness.Output(file.CorrelationId, file.Attempt, "muon")], 1));
        await _machine.WaitForState(file.CorrelationId, "Reconstructed");

        // The same attempt's stage-in, delivered again after a stager restart, lands once the worker is done with the copy.
        await _machine.Publish(new FileStaged(file.CorrelationId, 1000, "physics", "prompt", file.Attempt, "prompt/late.raw", 1234, "0a0b0c0d"));

        Assert.True(await _machine.Harness.Published.Any<DiscardStagedFile>(x => x.Context.Message.FileId == file.CorrelationId && x.Context.Message.CachedName == "prompt/late.raw"));
        Assert.Equal("Reconstructed", (await _machine.Store.LoadAsync(file.CorrelationId, CancellationToken.None))!.CurrentState);
    }

    [Fact]
    public async Task Should_archive_at_once_a_file_with_no_event_for_any_dataset()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        await _machine.Publish(new FileReconstructed(file.CorrelationId, 1000, "physics", "prompt", file.Attempt, "worker-1", [], 1));
        var done = await _machine.WaitForState(file.CorrelationId, "Archived");
        Assert.Empty(done.Outputs);
    }
}

public sealed class When_reconstruction_is_claimed : IAsyncLifetime
{
    private FileStateMachineHarness _machine = null!;

    public async Task InitializeAsync() => _machine = await FileStateMachineHarness.StartAsync();

    public async Task DisposeAsync() => await _machine.DisposeAsync();

    [Fact]
    public async Task Should_give_the_lease_to_one_worker_only_while_it_is_valid()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration(), "worker-1");

        var rival = await _machine.Claim(file, file.Attempt, "worker-2");
        Assert.False(rival.Granted);
        Assert.Contains("worker-1", rival.Reason, StringComparison.Ordinal);

        Assert.True((await _machine.Claim(file, file.Attempt, "worker-1", renewal: true)).Granted);

        // Once the lease runs out without renewal, another worker may take the attempt.
        _machine.Time.Advance(TimeSpan.FromMinutes(10));
        Assert.True((await _machine.Claim(file, file.Attempt, "worker-2")).Granted);
        Assert.False((await _machine.Claim(file, file.Attempt, "worker-1", renewal: true)).Granted);
    }

    [Fact]
    public async Task Should_refuse_a_claim_for_an_attempt_that_is_not_current()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        var stale = await _machine.Claim(file, file.Attempt - 1, "worker-9");
        Assert.False(stale.Granted);
        Assert.Contains("stale", stale.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_ignore_a_result_from_a_worker_that_does_not_hold_the_lease()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration(), "worker-1");
        await _machine.Publish(new FileReconstructed(file.CorrelationId, 1000, "physics", "prompt", file.Attempt, "worker-2",
            [FileStateMachineHarness.Output(file.CorrelationId, file.Attempt, "muon")], 1));
        await _machine.Harness.InactivityTask;
        Assert.Equal("Reconstructing", (await _machine.Store.LoadAsync(file.CorrelationId, CancellationToken.None))!.CurrentState);
    }
}

public sealed class When_a_file_fails : IAsyncLifetime
{
    private FileStateMachineHarness _machine = null!;

    public async Task InitializeAsync() => _machine = await FileStateMachineHarness.StartAsync();

    public async Task DisposeAsync() => await _machine.DisposeAsync();

    [Fact]
    public async Task Should_retry_from_stage_in_then_fail_with_the_reason_when_attempts_run_out()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        var id = file.CorrelationId;

        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", 1, "worker-1", "exit code 3: boom", 3, "line\nboom"));
        var retried = await _machine.WaitFor(id, s => s.CurrentState == "Staging" && s.Attempt == 2, "a second attempt");
        Assert.Equal(1, retried.Failures);
        Assert.True(await _machine.Harness.Published.Any<StageFile>(x => x.Context.Message.FileId == id && x.Context.Message.Attempt == 2));

        // A late result of the abandoned first attempt changes nothing.
        await _machine.Publish(new FileReconstructed(id, 1000, "physics", "prompt", 1, "worker-1", [FileStateMachineHarness.Output(id, 1, "muon")], 1));
        await _machine.Publish(new StagingFailed(id, 1000, "physics", "prompt", 2, "checksum mismatch staging"));
        var failed = await _machine.WaitForState(id, "Failed");

        Assert.Equal("checksum mismatch staging", failed.FailureReason);
        Assert.Equal(FileStateMachineHarness.MaxAttempts, failed.Failures);
        Assert.Empty(failed.Outputs);
        Assert.Equal("line\nboom", failed.LastLogTail);
        Assert.Equal(("staging", "staging: checksum mismatch staging"), (failed.FailureStage, failed.FailureSignature));
        Assert.Equal("sample-1.0", failed.FailureRelease);
    }

    [Fact]
    public async Task Should_retry_a_first_time_out_with_twice_the_limit_at_no_cost_and_count_a_second()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        var id = file.CorrelationId;

        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", 1, "worker-1", "timed out after 900s", null, "", TimedOutAfterSeconds: 900));
        var retried = await _machine.WaitFor(id, s => s.Attempt == 2 && s.CurrentState == "Staging", "attempt 2");
        Assert.Equal((0, 1_800, true), (retried.Failures, retried.TimeoutSeconds, retried.TimeLimitExtended));
        Assert.Contains(retried.History, h => h.Detail == "retry after: timed out after 900s (time limit now 1800s)");
        await _machine.Publish(new FileStaged(id, 1000, "physics", "prompt", 2, "prompt/x.raw", 1, "00000001"));
        await _machine.WaitForState(id, "Staged");
        await _machine.Dispatch(id);
        Assert.True(await _machine.Harness.Published.Any<ReconstructFile>(x => x.Context.Message.FileId == id && x.Context.Message.Attempt == 2 && x.Context.Message.TimeoutSeconds == 1_800));

        // The longer limit was not enough either: this time-out counts.
        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", 2, "worker-1", "timed out after 1800s", null, "", TimedOutAfterSeconds: 1_800));
        var counted = await _machine.WaitFor(id, s => s.Attempt == 3, "attempt 3");
        Assert.Equal((1, 1_800), (counted.Failures, counted.TimeoutSeconds));
    }

    [Fact]
    public async Task Should_send_every_reconstruction_request_with_its_campaigns_time_limit()
    {
        // The campaign has measured enough run times for its limit to follow them: 40 files of about 90 s.
        var runTimes = _machine.Provider.GetRequiredService<IRunTimeStore>();
        await runTimes.AddAsync("prompt", new Dictionary<int, long> { [RunTimeHistogram.BucketOf(90)] = 40 }, CancellationToken.None);
        var expected = WallTime.For(await runTimes.GetAsync("prompt", CancellationToken.None), ReleaseSpec.DefaultTimeoutSeconds, new WallTimeOptions()).Seconds;
        var registration = FileStateMachineHarness.Registration();

        var file = await _machine.Reconstructing(registration);
        // And again when a stalled attempt is issued anew.
        await _machine.Publish(new FileStalled(file.CorrelationId, file.Run, file.Stream, file.Campaign, file.Version));
        await _machine.WaitFor(file.CorrelationId, s => s.Attempt == 2, "a second attempt");

        Assert.NotEqual(ReleaseSpec.DefaultTimeoutSeconds, expected);
        var requests = _machine.Harness.Published.Select<ReconstructFile>(x => x.Context.Message.FileId == file.CorrelationId).Select(x => x.Context.Message).ToList();
        Assert.Equal([(1, (int?)expected), (2, expected)], requests.Select(r => (r.Attempt, r.TimeoutSeconds)).OrderBy(r => r.Attempt));
    }

    [Fact]
    public async Task Should_give_an_operator_retry_its_extra_attempts_and_time_limit()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        var id = file.CorrelationId;
        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", 1, "worker-1", "exit code 137: Killed after 1000s", 137, "started\nKilled\n"));
        await _machine.WaitFor(id, s => s.Attempt == 2 && s.CurrentState == "Staging", "attempt 2");
        await _machine.Publish(new FileStaged(id, 1000, "physics", "prompt", 2, "prompt/x.raw", 1, "00000001"));
        await _machine.WaitForState(id, "Staged");
        await _machine.Dispatch(id);
        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", 2, "worker-2", "exit code 137: Killed after 2000s", 137, "started\nKilled\n"));
        var failed = await _machine.WaitForState(id, "Failed");
        Assert.Equal("reconstruction exit 137: Killed", failed.FailureSignature);

        await _machine.Publish(new RetryFile(id, 1000, "physics", "prompt", "shift-crew", ExtraAttempts: 2, TimeoutSeconds: 86_400));
        var retried = await _machine.WaitForState(id, "Staging");
        Assert.Equal((2, 86_400, (string?)null), (retried.ExtraAttempts, retried.TimeoutSeconds, retried.FailureSignature));
        Assert.Contains(retried.History, h => h.Detail == "retried by shift-crew, 2 extra attempts, time limit 86400s");

        // The budget is now the campaign's plus two: the file survives as many failures.
        await _machine.Publish(new StagingFailed(id, 1000, "physics", "prompt", retried.Attempt, "tape error"));
        var second = await _machine.WaitFor(id, s => s.Failures == 1 && s.CurrentState == "Staging", "a retry after the first failure");
        await _machine.Publish(new FileStaged(id, 1000, "physics", "prompt", second.Attempt, "prompt/x.raw", 1, "00000001"));
        await _machine.WaitForState(id, "Staged");
        await _machine.Dispatch(id);
        Assert.True(await _machine.Harness.Published.Any<ReconstructFile>(x => x.Context.Message.FileId == id && x.Context.Message.TimeoutSeconds == 86_400));
    }

    [Fact]
    public async Task Should_quarantine_it_when_two_attempts_in_a_row_fail_the_same_way_before_its_budget_is_spent()
    {
        var registration = FileStateMachineHarness.Registration();
        var id = registration.FileId;
        await _machine.Publish(registration);
        await _machine.WaitForState(id, "Staging");
        await _machine.Publish(new StagingFailed(id, 1000, "physics", "prompt", 1, "tape error"));
        await _machine.WaitFor(id, s => s.Attempt == 2, "second attempt");
        await _machine.Publish(new StagingFailed(id, 1000, "physics", "prompt", 2, "tape error"));
        await _machine.WaitForState(id, "Failed");
        // A budget of four: the next failures are not the budget's doing.
        await _machine.Publish(new RetryFile(id, 1000, "physics", "prompt", "shift-crew", ExtraAttempts: 2));
        var attempt = (await _machine.WaitForState(id, "Staging")).Attempt;

        // Two different failures in a row are retried...
        await _machine.Publish(new StagingFailed(id, 1000, "physics", "prompt", attempt, "tape error"));
        attempt = (await _machine.WaitFor(id, s => s.Attempt == attempt + 1 && s.CurrentState == "Staging", "a retry after a tape error")).Attempt;
        await _machine.Publish(new FileStaged(id, 1000, "physics", "prompt", attempt, "prompt/x.raw", 1, "00000001"));
        await _machine.WaitForState(id, "Staged");
        await _machine.Dispatch(id);
        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", attempt, "worker-1", "exit code 137: Killed after 172800s", 137, "started\nKilled\n"));
        attempt = (await _machine.WaitFor(id, s => s.Attempt == attempt + 1 && s.CurrentState == "Staging", "a retry after a kill")).Attempt;
        Assert.False((await _machine.Store.LoadAsync(id, CancellationToken.None))!.Quarantined);

        // ...the same one twice in a row is not: the third of four attempts is the last.
        await _machine.Publish(new FileStaged(id, 1000, "physics", "prompt", attempt, "prompt/x.raw", 1, "00000001"));
        await _machine.WaitForState(id, "Staged");
        await _machine.Dispatch(id);
        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", attempt, "worker-2", "exit code 137: Killed after 172801s", 137, "started\nKilled\n"));
        var quarantined = await _machine.WaitForState(id, "Failed");

        Assert.Equal((true, 3, 2), (quarantined.Quarantined, quarantined.Failures, quarantined.RepeatedFailures));
        Assert.Contains(quarantined.History, h => h.Detail == "quarantined after 2 attempts failing the same way (reconstruction exit 137: Killed): exit code 137: Killed after 172801s");

        // An operator's retry starts the count again.
        await _machine.Publish(new RetryFile(id, 1000, "physics", "prompt", "shift-crew"));
        var retried = await _machine.WaitForState(id, "Staging");
        Assert.Equal((false, 0), (retried.Quarantined, retried.RepeatedFailures));
    }

    [Fact]
    public async Task Should_hold_a_file_whose_job_a_worker_took_out_for_its_paused_campaign_before_this_process_read_the_pause()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        var id = file.CorrelationId;

        // This process has not read the pause yet (its PauseState is empty); the worker that cancelled the job has.
        await _machine.Publish(new ReconstructionFailed(id, 1000, "physics", "prompt", 1, "worker-1",
            "batch job 7 cancelled while queued: campaign prompt is paused", null, "", SiteFailure: true, CampaignPaused: true));
        var held = await _machine.WaitFor(id, s => s.Held, "the file held");

        Assert.Equal((0, 1, 1), (held.Failures, held.SiteFailures, held.Attempt));
        Assert.Contains(held.History, h => h.Event == "ReconstructionFailed" && h.Detail == "held: campaign prompt is paused");
        Assert.False(await _machine.Harness.Published.Any<StageFile>(x => x.Context.Message.FileId == id && x.Context.Message.Attempt == 2));
    }

    [Fact]
    public async Task Should_start_again_when_an_operator_retries_it()
    {
        var registration = FileStateMachineHarness.Registration();
        await _machine.Publish(registration);
        await _machine.WaitForState(registration.FileId, "Staging");
        await _machine.Publish(new StagingFailed(registration.FileId, 1000, "physics", "prompt", 1, "tape error"));
        await _machine.WaitFor(registration.FileId, s => s.Attempt == 2, "second attempt");
        await _machine.Publish(new StagingFailed(registration.FileId, 1000, "physics", "prompt", 2, "tape error"));
        await _machine.WaitForState(registration.FileId, "Failed");

        await _machine.Publish(new RetryFile(registration.FileId, 1000, "physics", "prompt", "operator"));
        var again = await _machine.WaitForState(registration.FileId, "Staging");

        Assert.Equal(3, again.Attempt);
        Assert.Equal(0, again.Failures);
        Assert.Contains(again.History, h => h.Detail == "retried by operator");
    }
}

public sealed class When_a_file_stalls : IAsyncLifetime
{
    private FileStateMachineHarness _machine = null!;

    public async Task InitializeAsync() => _machine = await FileStateMachineHarness.StartAsync();

    public async Task DisposeAsync() => await _machine.DisposeAsync();

    [Fact]
    public async Task Should_issue_the_step_again_only_if_the_file_has_not_moved_since_it_was_seen()
    {
        var registration = FileStateMachineHarness.Registration();
        await _machine.Publish(registration);
        var seen = await _machine.WaitForState(registration.FileId, "Staging");

        await _machine.Publish(new FileStalled(registration.FileId, 1000, "physics", "prompt", seen.Version));
        var reissued = await _machine.WaitFor(registration.FileId, s => s.Stalls == 1, "a stage-in asked for again");
        // The same attempt, asked for again: whichever of the two requests finishes first is current.
        Assert.Equal((1, "Staging"), (reissued.Attempt, reissued.CurrentState));
        Assert.Equal(2, _machine.Harness.Published.Select<StageFile>().Count(x => x.Context.Message.FileId == registration.FileId && x.Context.Message.Attempt == 1));

        // A report about an older version is out of date: the file moved meanwhile.
        await _machine.Publish(new FileStalled(registration.FileId, 1000, "physics", "prompt", seen.Version));
        await _machine.Harness.InactivityTask;
        Assert.Equal(1, (await _machine.Store.LoadAsync(registration.FileId, CancellationToken.None))!.Stalls);
        Assert.Equal(2, _machine.Harness.Published.Select<StageFile>().Count(x => x.Context.Message.FileId == registration.FileId));
    }

    [Fact]
    public async Task Should_take_the_stage_in_that_finishes_first_and_wait_longer_after_each_stall()
    {
        var registration = FileStateMachineHarness.Registration();
        await _machine.Publish(registration);
        var first = await _machine.WaitForState(registration.FileId, "Staging");
        var timeout = new OrchestratorOptions().StagingTimeoutSeconds;
        Assert.Equal(_machine.Time.GetUtcNow().AddSeconds(timeout), first.Deadline);

        // The stager's queue is longer than the deadline: the stall's request waits behind the first one.
        await _machine.Publish(new FileStalled(registration.FileId, 1000, "physics", "prompt", first.Version));
        var second = await _machine.WaitFor(registration.FileId, s => s.Stalls == 1, "the first stall");
        Assert.Equal(_machine.Time.GetUtcNow().AddSeconds(timeout * 2), second.Deadline);
        await _machine.Publish(new FileStalled(registration.FileId, 1000, "physics", "prompt", second.Version));
        var third = await _machine.WaitFor(registration.FileId, s => s.Stalls == 2, "the second stall");
        Assert.Equal(_machine.Time.GetUtcNow().AddSeconds(timeout * FileDeadlines.StallBackoffLimit), third.Deadline);

        // The first request, reached at last, stages the file: it is current.
        await _machine.Publish(new FileStaged(registration.FileId, 1000, "physics", "prompt", first.Attempt, "prompt/" + registration.LogicalName, 1234, "0a0b0c0d"));
        var staged = await _machine.WaitFor(registration.FileId, s => s.CurrentState is "Staged" or "Queued", "staged by the first request");
        Assert.Equal(1, staged.Attempt);
    }

    [Fact]
    public async Task Should_give_a_dead_workers_job_to_a_new_attempt()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration(), "worker-1");
        await _machine.Publish(new FileStalled(file.CorrelationId, 1000, "physics", "prompt", file.Version));

        var staged = await _machine.WaitFor(file.CorrelationId, s => s.CurrentState == "Queued" && s.Attempt == file.Attempt + 1, "a new attempt");
        Assert.Null(staged.Worker);
        Assert.True(await _machine.Harness.Published.Any<ReconstructFile>(x => x.Context.Message.Attempt == staged.Attempt));
        Assert.True((await _machine.Claim(staged, staged.Attempt, "worker-2")).Granted);
    }

    [Fact]
    public async Task Should_fail_a_file_that_keeps_stalling()
    {
        var registration = FileStateMachineHarness.Registration();
        await _machine.Publish(registration);
        for (var stall = 1; stall <= 3; stall++)
        {
            var current = await _machine.WaitFor(registration.FileId, s => s.Stalls == stall - 1, $"stall {stall - 1} recorded");
            await _machine.Publish(new FileStalled(registration.FileId, 1000, "physics", "prompt", current.Version));
        }
        var failed = await _machine.WaitForState(registration.FileId, "Failed");
        Assert.Equal("stalled 3 times", failed.FailureReason);
    }

    [Fact]
    public async Task Should_send_unarchived_outputs_to_the_merger_again()
    {
        var file = await _machine.Reconstructing(FileStateMachineHarness.Registration());
        var output = FileStateMachineHarness.Output(file.CorrelationId, file.Attempt, "muon");
        await _machine.Publish(new FileReconstructed(file.CorrelationId, 1000, "physics", "prompt", file.Attempt, "worker-1", [output], 1));
        var reconstructed = await _machine.WaitForState(file.CorrelationId, "Reconstructed");

        await _machine.Publish(new FileStalled(file.CorrelationId, 1000, "physics", "prompt", reconstructed.Version));

        await _machine.WaitFor(file.CorrelationId, s => s.Version > reconstructed.Version, "the stall handled");
        Assert.True(await _machine.Harness.Published.Any<MergeOutput>(x => x.Context.Message.Output.OutputId == output.OutputId));
        Assert.Equal(2, _machine.Harness.Published.Select<MergeOutput>().Count(x => x.Context.Message.Output.OutputId == output.OutputId));
    }
}

public sealed class When_a_dispatch_comes_from_a_deposed_dispatcher : IAsyncLifetime
{
    private FileStateMachineHarness _machine = null!;

    public async Task InitializeAsync() => _machine = await FileStateMachineHarness.StartAsync();

    public async Task DisposeAsync() => await _machine.DisposeAsync();

    [Fact]
    public async Task Should_refuse_it_and_take_the_current_dispatchers()
    {
        // The first dispatcher's lease (token 1) ran out and another took over (token 2).
        var now = DateTimeOffset.UtcNow;
        await _machine.Singletons.AcquireAsync(Production.Control.Singletons.Dispatcher, "orchestrator-1", TimeSpan.Zero, now, CancellationToken.None);
        var current = await _machine.Singletons.AcquireAsync(Production.Control.Singletons.Dispatcher, "orchestrator-2", TimeSpan.FromMinutes(1), now, CancellationToken.None);
        Assert.Equal(("orchestrator-2", 2L), (current.Holder, current.Token));
        var registration = FileStateMachineHarness.Registration();
        await _machine.Publish(registration);
        var staging = await _machine.WaitForState(registration.FileId, "Staging");
        await _machine.Publish(new FileStaged(registration.FileId, 1000, "physics", "prompt", staging.Attempt, "prompt/" + registration.LogicalName, 1234, "0a0b0c0d"));
        await _machine.WaitForState(registration.FileId, "Staged");

        await _machine.Publish(new DispatchReconstruction(registration.FileId, 1000, "physics", "prompt", Fence: 1));
        var refused = await _machine.WaitFor(registration.FileId, f => f.History.Any(h => h.Event == "DispatchReconstruction"), "the dispatch handled");
        Assert.Equal("Staged", refused.CurrentState);
        Assert.Contains("since taken over by another dispatcher", refused.History[^1].Detail, StringComparison.Ordinal);

        await _machine.Publish(new DispatchReconstruction(registration.FileId, 1000, "physics", "prompt", Fence: 2));
        var queued = await _machine.WaitForState(registration.FileId, "Queued");
        Assert.Equal("reconstruction slot given", queued.History[^1].Detail);
    }
}

