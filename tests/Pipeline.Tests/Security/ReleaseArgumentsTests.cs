using Pipeline.Infrastructure.Processes;
using Pipeline.Reconstruction;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Security;

/// <summary>
/// A release's argument template is filled with values that come from outside (run conditions recorded by data
/// acquisition, names, parameters): whatever they hold, each reaches the program as one argument, and no shell
/// ever sees them.
/// </summary>
public sealed class When_a_release_is_given_hostile_values
{
    public static TheoryData<string> Hostile => new()
    {
        "a;touch {canary}",
        "$(touch {canary})",
        "`touch {canary}`",
        "x && touch {canary}",
        "x | touch {canary}",
        "x\ntouch {canary}",
        "'; touch {canary}; '",
        "\"; touch {canary}; \"",
        "> {canary}",
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task Should_pass_each_value_as_one_literal_argument_and_never_create_the_canary(string hostile)
    {
        using var folder = new TempDirectory();
        var canary = Path.Combine(folder.Path, "canary");
        var value = hostile.Replace("{canary}", canary, StringComparison.Ordinal);
        var values = new Dictionary<string, string> { ["conditions"] = value, ["run"] = value, ["campaign"] = value };
        // printf prints each argument on a line of its own between markers: what arrived, and as how many arguments.
        var arguments = new[] { "<%s>\\n", "{conditions}", "--run={run}", "{campaign}" }.Select(a => ArgumentTemplate.Expand(a, values)).ToList();
        var job = new ReleaseJob("/usr/bin/printf", arguments, folder.Path, Path.Combine(folder.Path, "job.log"), TimeSpan.FromMinutes(1));

        var outcome = await new ProcessReleaseRunner().RunAsync(job, CancellationToken.None);

        Assert.Equal(0, outcome.ExitCode);
        Assert.False(File.Exists(canary), $"the canary was created by {hostile}");
        var log = await File.ReadAllTextAsync(job.LogPath);
        Assert.Equal($"<{value}>\n<--run={value}>\n<{value}>\n", log.Replace("\r", "", StringComparison.Ordinal));
    }
}
