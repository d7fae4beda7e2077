using Pipeline.Orchestrator;
using Pipeline.Production.Failures;
using Pipeline.Production.State;

namespace Pipeline.Tests.Orchestrator;

public sealed class When_the_attempt_policy_judges_a_failing_file
{
    private static FileState File(int maxAttempts = 3) => new() { MaxAttempts = maxAttempts, Release = "sample-1.0" };

    [Fact]
    public void Should_allow_retries_until_the_budget_is_spent_and_then_fail_without_quarantine()
    {
        var policy = new AttemptPolicy(maxStalls: 10, quarantineAfterRepeats: 0);
        var file = File(maxAttempts: 2);

        AttemptPolicy.CountFailure(file, FailureSignature.Staging, "tape offline", null, null);
        Assert.True(policy.HasAttemptsLeft(file));
        AttemptPolicy.CountFailure(file, FailureSignature.Staging, "tape offline", null, null);
        Assert.False(policy.HasAttemptsLeft(file));

        Assert.Equal("tape offline", AttemptPolicy.Fail(file, "tape offline"));
        Assert.False(file.Quarantined);
        Assert.Equal((2, "tape offline", FailureSignature.Staging, "sample-1.0"), (file.Failures, file.FailureReason, file.FailureStage, file.FailureRelease));
    }

    [Fact]
    public void Should_retry_the_sites_failures_without_spending_attempts_until_its_free_ones_are_used_up()
    {
        var policy = new AttemptPolicy(maxStalls: 10, quarantineAfterRepeats: 2, freeSiteFailures: 3);
        var file = File(maxAttempts: 1);

        for (var lost = 0; lost < 3; lost++)
        {
            policy.CountSiteFailure(file, FailureSignature.Reconstruction, $"the site failed batch job {40 + lost}: NODE_FAIL (None) on node n{lost}", null);
            Assert.True(policy.HasAttemptsLeft(file));
        }
        Assert.Equal((0, 3, 0), (file.Failures, file.SiteFailures, file.RepeatedFailures));
        Assert.Contains("NODE_FAIL", file.FailureReason, StringComparison.Ordinal);

        // A site that keeps failing the file: past its free failures they count, and the budget of one is spent.
        policy.CountSiteFailure(file, FailureSignature.Reconstruction, "the site failed batch job 43: NODE_FAIL (None) on node n3", null);
        Assert.Equal((1, 3), (file.Failures, file.SiteFailures));
        Assert.False(policy.HasAttemptsLeft(file));
    }

    [Fact]
    public void Should_quarantine_a_failure_that_repeats_before_the_budget_is_spent()
    {
        var policy = new AttemptPolicy(maxStalls: 10, quarantineAfterRepeats: 2);
        var file = File(maxAttempts: 5);

        AttemptPolicy.CountFailure(file, FailureSignature.Reconstruction, "exit code 137: Killed", 137, "Killed");
        Assert.True(policy.HasAttemptsLeft(file));
        AttemptPolicy.CountFailure(file, FailureSignature.Reconstruction, "exit code 137: Killed", 137, "Killed");
        Assert.Equal(2, file.RepeatedFailures);
        Assert.False(policy.HasAttemptsLeft(file));

        var note = AttemptPolicy.Fail(file, "exit code 137: Killed");
        Assert.True(file.Quarantined);
        Assert.StartsWith("quarantined after 2 attempts failing the same way (", note, StringComparison.Ordinal);
    }

    [Fact]
    public void Should_count_a_different_failure_as_a_new_run_of_repeats()
    {
        var policy = new AttemptPolicy(maxStalls: 10, quarantineAfterRepeats: 2);
        var file = File(maxAttempts: 5);

        AttemptPolicy.CountFailure(file, FailureSignature.Reconstruction, "exit code 137: Killed", 137, "Killed");
        AttemptPolicy.CountFailure(file, FailureSignature.Staging, "checksum mismatch", null, null);

        Assert.Equal((2, 1), (file.Failures, file.RepeatedFailures));
        Assert.True(policy.HasAttemptsLeft(file));
    }

    [Fact]
    public void Should_not_count_a_step_held_for_a_paused_campaign_as_a_stall_and_fail_past_the_limit()
    {
        var policy = new AttemptPolicy(maxStalls: 2, quarantineAfterRepeats: 2);
        var file = File();
        file.Held = true;

        Assert.True(policy.CountStall(file));
        Assert.Equal((0, false), (file.Stalls, file.Held));
        Assert.True(policy.CountStall(file));
        Assert.True(policy.CountStall(file));
        Assert.False(policy.CountStall(file));

        AttemptPolicy.Stalled(file);
        Assert.Equal(("stalled 3 times", FailureSignature.Watchdog), (file.FailureReason, file.FailureStage));
    }

    [Fact]
    public void Should_start_the_counts_again_when_an_operator_retries_keeping_the_time_limit_unless_given()
    {
        var policy = new AttemptPolicy(maxStalls: 2, quarantineAfterRepeats: 2);
        var file = File(maxAttempts: 1);
        file.TimeoutSeconds = 600;
        AttemptPolicy.CountFailure(file, FailureSignature.Reconstruction, "exit code 1", 1, null);
        AttemptPolicy.Fail(file, "exit code 1");

        AttemptPolicy.Retry(file, extraAttempts: -3, timeoutSeconds: null);

        Assert.Equal((0, 0, false, 0, null, 0, 600), (file.Failures, file.RepeatedFailures, file.Quarantined, file.Stalls, file.FailureReason, file.ExtraAttempts, file.TimeoutSeconds));
        Assert.True(policy.HasAttemptsLeft(file));
        AttemptPolicy.Retry(file, extraAttempts: 2, timeoutSeconds: 86400);
        Assert.Equal((2, 86400), (file.ExtraAttempts, file.TimeoutSeconds));
    }
}
