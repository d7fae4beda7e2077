using System.Diagnostics;

namespace Pipeline.Tests.Support;

/// <summary>
/// The `pipeline` command line installed as `make cli` installs it: the .NET tool package the build made, put into a
/// tool folder of its own (not the user's) with `dotnet tool install`, and run as the program it installs.
/// </summary>
public sealed class InstalledCommandLine : IAsyncLifetime
{
    private readonly TempDirectory _folder = new();

    /// <summary>Where the tool is installed, and the HOME of every run.</summary>
    public string Folder => _folder.Path;

    public string Program => Path.Combine(Folder, "tools", "pipeline");

    public async Task InitializeAsync()
    {
        var configuration = new DirectoryInfo(AppContext.BaseDirectory).Parent?.Name ?? "Release";
        var package = Path.Combine(Platform.RepositoryRoot, "services", "Pipeline.Cli", "bin", configuration, "package");
        Assert.True(Directory.Exists(package), $"{package} is missing: the build packs the command line there");
        var result = await Tool.RunAsync("dotnet", ["tool", "install", "--tool-path", Path.Combine(Folder, "tools"), "--add-source", package, "--ignore-failed-sources", "Pipeline.Cli"],
            // A packages folder of its own: the user's cache may hold an older build under the same version.
            new Dictionary<string, string?> { ["NUGET_PACKAGES"] = Path.Combine(Folder, "packages") });
        Assert.True(result.ExitCode == 0, $"dotnet tool install failed: {result}");
    }

    public Task DisposeAsync()
    {
        _folder.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Runs `pipeline` with these arguments and environment (PIPELINE_URL, PIPELINE_API_KEY, …), stdin closed.</summary>
    public Task<ToolRun> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        Tool.RunAsync(Program, arguments, Environment(environment), limit: TimeSpan.FromMinutes(3));

    /// <summary>Starts `pipeline` and leaves it running (a watch), its output read line by line by the caller.</summary>
    public Process Start(IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        Process.Start(Tool.StartInfo(Program, arguments, Environment(environment)))!;

    /// <summary>
    /// Only the given settings: none of the machine's PIPELINE_* variables, and this folder as HOME, so that no config
    /// file of the machine's user is read.
    /// </summary>
    private Dictionary<string, string?> Environment(IReadOnlyDictionary<string, string> given)
    {
        var environment = new Dictionary<string, string?>
        {
            ["PIPELINE_URL"] = null, ["PIPELINE_API_KEY"] = null, ["PIPELINE_API_KEY_FILE"] = null, ["PIPELINE_CONFIG"] = null, ["XDG_CONFIG_HOME"] = null,
            ["HOME"] = Folder,
        };
        foreach (var (name, value) in given)
        {
            environment[name] = value;
        }
        return environment;
    }
}
