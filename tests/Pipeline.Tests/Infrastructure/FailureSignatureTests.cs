using Pipeline.Production.Failures;

namespace Pipeline.Tests.Infrastructure;

public sealed class When_failures_are_classified
{
    [Fact]
    public void Should_give_the_same_signature_to_the_same_failure_of_different_files()
    {
        var first = FailureSignature.Describe("reconstruction", 3, "exit code 3",
            "opening /data/cache/prompt/raw/run001000/physics/run001000_physics_0001.raw\nERROR bad record 1234 at offset 0x7f3a99c0 in run001000_physics_0001.raw (event 555)\nbye");
        var second = FailureSignature.Describe("reconstruction", 3, "exit code 3",
            "opening /data/cache/prompt/raw/run002417/express/run002417_express_0913.raw\nERROR bad record 87 at offset 0x0000beef in run002417_express_0913.raw (event 1)\nbye");

        Assert.Equal(first, second);
        Assert.Equal(FailureSignature.Id(first), FailureSignature.Id(second));
        Assert.Matches("^[0-9a-f]{12}$", FailureSignature.Id(first));
        Assert.StartsWith("reconstruction exit 3: ERROR bad record <n>", first, StringComparison.Ordinal);
    }

    [Fact]
    public void Should_tell_apart_failures_of_another_stage_exit_code_or_message()
    {
        var signatures = new[]
        {
            FailureSignature.Describe("reconstruction", 3, "exit code 3", "ERROR bad record 1"),
            FailureSignature.Describe("reconstruction", 139, "exit code 139", "ERROR bad record 1"),
            FailureSignature.Describe("staging", null, "ERROR bad record 1", null),
            FailureSignature.Describe("reconstruction", 3, "exit code 3", "ERROR calibration constants missing for run 1"),
        };

        Assert.Equal(signatures.Length, signatures.Distinct().Count());
    }

    [Fact]
    public void Should_use_the_reason_when_the_log_has_no_error_line_and_blank_ids_checksums_and_times()
    {
        var signature = FailureSignature.Describe("staging", null,
            "checksum mismatch staging raw/run1/a.raw: expected 0a0b0c0d, got 1b2c3d4e at 2026-11-26T04:00:00Z for 6f1c2d3e-4b5a-5968-8777-0123456789ab",
            "all fine here\nnothing to see");

        Assert.Equal("staging: checksum mismatch staging <path>: expected <hex>, got <hex> at <time> for <id>", signature);
        Assert.Equal("ERROR simulated failure", FailureSignature.FirstErrorLine("starting\n  ERROR simulated failure  \nERROR second"));
        Assert.Null(FailureSignature.FirstErrorLine(null));
        Assert.True(FailureSignature.Normalise(new string('x', 1000)).Length <= 161);
    }
}
