using System.Diagnostics;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Processes;

namespace Pipeline.Tests.Infrastructure;

public class When_a_command_writes_a_file_into_a_pipe
{
    private static Exception Failed(CommandOutcome outcome) => new IOException($"the copy {outcome.Describe()}");

    [Fact]
    public async Task Should_read_every_byte_and_its_end_only_once_the_command_succeeded()
    {
        const int length = (3 << 20) + 17;
        await using var output = ExternalCommand.OpenOutput(["head", "-c", length.ToString(System.Globalization.CultureInfo.InvariantCulture), "/dev/urandom"], TimeSpan.FromMinutes(1), Failed);
        await using var counted = new ChecksummingStream(Stream.Null);

        await output.CopyToAsync(counted);

        Assert.Equal(length, counted.Length);
    }

    [Fact]
    public async Task Should_fail_the_last_read_with_the_commands_own_message_when_it_exits_non_zero()
    {
        await using var output = ExternalCommand.OpenOutput(["ls", "/no/such/folder/here"], TimeSpan.FromMinutes(1), Failed);

        var failure = await Assert.ThrowsAsync<IOException>(() => output.CopyToAsync(Stream.Null));

        Assert.Contains("exited with code 2", failure.Message, StringComparison.Ordinal);
        Assert.Contains("/no/such/folder/here", failure.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_kill_a_command_that_runs_past_its_time_and_say_so()
    {
        var started = Stopwatch.StartNew();
        await using var output = ExternalCommand.OpenOutput(["sleep", "60"], TimeSpan.FromMilliseconds(300), Failed);

        var failure = await Assert.ThrowsAsync<IOException>(() => output.CopyToAsync(Stream.Null));

        Assert.Contains("timed out and was killed", failure.Message, StringComparison.Ordinal);
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(50), $"the read waited {started.Elapsed} for a command given 300 ms");
    }

    [Fact]
    public void Should_give_the_pipe_a_megabyte_of_room()
    {
        var start = new ProcessStartInfo("sleep") { ArgumentList = { "10" }, RedirectStandardOutput = true, UseShellExecute = false };
        using var process = Process.Start(start)!;
        try
        {
            Assert.True(PipeCapacity.TryEnlarge(process.StandardOutput.BaseStream, PipeCapacity.OutputBytes));
            Assert.False(PipeCapacity.TryEnlarge(new MemoryStream(), PipeCapacity.OutputBytes));
        }
        finally
        {
            process.Kill();
        }
    }
}
