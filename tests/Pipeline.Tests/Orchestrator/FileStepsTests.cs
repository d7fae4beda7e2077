using Pipeline.Contracts;
using Pipeline.Orchestrator;
using Pipeline.Production.State;

namespace Pipeline.Tests.Orchestrator;

/// <summary>The messages a saga sends, made from what it holds, and the arithmetic of its deadlines and leases: plain types, tested without a bus.</summary>
public sealed class When_a_saga_makes_its_messages_and_deadlines
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-12-07T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static FileState Saga(bool simulated = false) => new()
    {
        CorrelationId = Guid.Parse("0badcafe-0000-4000-8000-000000000001"),
        Campaign = "prompt",
        Run = 12,
        Stream = "physics",
        Section = 3,
        LogicalName = "raw/run000012/physics/f.raw",
        Size = 1_000,
        Adler32 = "0a0b0c0d",
        Events = 500,
        Attempt = 2,
        CachedName = simulated ? null : "prompt/raw/f.raw",
        Release = "sample-1.0",
        Datasets = [new DatasetSelection("muon", 1)],
        CalibrationTag = "cal-1",
        RunConditions = "beamEnergy=6.5",
        Simulated = simulated,
    };

    [Fact]
    public void Should_ask_for_a_reconstruction_with_the_campaigns_time_limit_unless_the_file_has_its_own()
    {
        var saga = Saga();

        var request = FileMessages.Reconstruct(saga, campaignTimeLimitSeconds: 900);

        Assert.Equal((saga.CorrelationId, 12, "physics", "prompt", 2, 3), (request.FileId, request.Run, request.Stream, request.Campaign, request.Attempt, request.Section));
        Assert.Equal(("prompt/raw/f.raw", "sample-1.0", "cal-1", "beamEnergy=6.5"), (request.CachedName, request.ReleaseVersion, request.CalibrationTag, request.RunConditions));
        Assert.Equal((900, 0L, 1_000L, "0a0b0c0d"), (request.TimeoutSeconds, request.Events, request.InputSize, request.InputAdler32));
        saga.TimeoutSeconds = 1_800;
        Assert.Equal(1_800, FileMessages.Reconstruct(saga, 900).TimeoutSeconds);
    }

    [Fact]
    public void Should_ask_a_simulated_file_for_its_events_and_no_input()
    {
        var request = FileMessages.Reconstruct(Saga(simulated: true), 900);

        Assert.Equal((500L, 0L, (string?)null, (string?)null), (request.Events, request.InputSize, request.InputAdler32, request.CachedName));
    }

    [Fact]
    public void Should_stage_merge_and_discard_with_the_files_own_facts()
    {
        var saga = Saga();
        var output = new TrackedOutput { Output = new OutputFile("o1", "muon", "jobs/o1.evt", 10, "00000001", 3, 12, 3) };

        var stage = FileMessages.Stage(saga);
        var merge = FileMessages.Merge(saga, output);
        var discard = FileMessages.Discard(saga, "prompt/raw/f.raw");

        Assert.Equal((2, "raw/run000012/physics/f.raw", 1_000L, "0a0b0c0d"), (stage.Attempt, stage.LogicalName, stage.Size, stage.Adler32));
        Assert.Equal(("raw/run000012/physics/f.raw", "o1", "0a0b0c0d"), (merge.RawName, merge.Output.OutputId, merge.RawAdler32));
        Assert.Equal((saga.CorrelationId, "prompt/raw/f.raw"), (discard.FileId, discard.CachedName));
    }

    [Fact]
    public void Should_double_a_stalled_stage_ins_wait_up_to_its_limit()
    {
        var options = new OrchestratorOptions();
        var deadlines = new FileDeadlines(options);
        var saga = Saga();

        var waits = Enumerable.Range(0, 5).Select(stalls =>
        {
            saga.Stalls = stalls;
            return (deadlines.StagingAskedAgain(saga, Now) - Now).TotalSeconds / options.StagingTimeoutSeconds;
        }).ToList();

        Assert.Equal([1.0, 2, FileDeadlines.StallBackoffLimit, FileDeadlines.StallBackoffLimit, FileDeadlines.StallBackoffLimit], waits);
    }

    [Fact]
    public void Should_extend_a_deadline_only_past_what_a_step_was_told_to_wait()
    {
        var options = new OrchestratorOptions();
        var deadlines = new FileDeadlines(options);
        var saga = Saga();
        saga.Deadline = deadlines.Staging(Now);

        deadlines.ExtendStaging(saga, Now.AddSeconds(-options.StagingTimeoutSeconds));
        Assert.Equal(Now.AddSeconds(options.StagingTimeoutSeconds), saga.Deadline);
        deadlines.ExtendStaging(saga, Now.AddHours(5));
        Assert.Equal(Now.AddHours(5).AddSeconds(options.StagingTimeoutSeconds), saga.Deadline);
        deadlines.ExtendStaging(saga, null);
        Assert.Equal(Now.AddHours(5).AddSeconds(options.StagingTimeoutSeconds), saga.Deadline);
    }

    [Fact]
    public void Should_lease_a_reconstruction_to_one_worker_and_past_its_end_to_another()
    {
        var options = new OrchestratorOptions();
        var leases = new ReconstructionLeases(options);
        var saga = Saga();
        saga.CurrentState = FileStates.Queued;
        ClaimReconstruction Claim(string worker, bool renewal = false, int attempt = 2, string? batchJob = null) =>
            new(saga.CorrelationId, 12, "physics", "prompt", attempt, worker, renewal, batchJob);

        Assert.True(ReconstructionLeases.CanGrant(saga, Claim("w1"), Now));
        leases.Grant(saga, Claim("w1"), Now);
        Assert.Equal(("w1", Now.AddSeconds(options.LeaseSeconds), Now.AddSeconds(options.LeaseSeconds), "claimed by w1"), (saga.Worker, saga.LeaseExpiresAt, saga.Deadline, saga.Because));

        Assert.False(ReconstructionLeases.CanGrant(saga, Claim("w2"), Now));
        Assert.StartsWith("lease held by w1 until", ReconstructionLeases.RefusalReason(saga, Claim("w2")), StringComparison.Ordinal);
        Assert.False(ReconstructionLeases.CanGrant(saga, Claim("w2", renewal: true), Now.AddHours(1)));
        Assert.Equal("attempt 1 is stale; current attempt is 2", ReconstructionLeases.RefusalReason(saga, Claim("w1", attempt: 1)));
        Assert.True(ReconstructionLeases.CanGrant(saga, Claim("w2"), Now.AddSeconds(options.LeaseSeconds + 1)));

        // A batch job outlives its worker's lease: the file waits the adoption grace on top before the watchdog moves it on.
        leases.Grant(saga, Claim("w1", renewal: true, batchJob: "slurm:42"), Now);
        Assert.Equal(("slurm:42", Now.AddSeconds(options.LeaseSeconds + options.BatchAdoptionSeconds)), (saga.BatchJob, saga.Deadline));
        // A renewal naming only the executor keeps the id known before.
        leases.Grant(saga, Claim("w1", renewal: true, batchJob: "slurm"), Now);
        Assert.Equal("slurm:42", saga.BatchJob);
    }
}
