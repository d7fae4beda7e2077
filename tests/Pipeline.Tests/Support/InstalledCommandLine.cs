using System.Diagnostics;

namespace Pipeline.Tests.Support;

/// <summary>What one run of `pipeline` printed and exited with.</summary>
public sealed record CommandLineRun(int ExitCode, string Output, string Errors)
{
    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Errors}";
}

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
        var install = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            // A packages folder of its own: the user's cache may hold an older build under the same version.
            Environment = { ["NUGET_PACKAGES"] = Path.Combine(Folder, "packages") },
        };
        foreach (var argument in new[] { "tool", "install", "--tool-path", Path.Combine(Folder, "tools"), "--add-source", package, "--ignore-failed-sources", "Pipeline.Cli" })
        {
            install.ArgumentList.Add(argument);
        }
        var result = await RunAsync(install, null);
        Assert.True(result.ExitCode == 0, $"dotnet tool install failed: {result}");
    }

    public Task DisposeAsync()
    {
        _folder.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>Runs `pipeline` with these arguments and environment (PIPELINE_URL, PIPELINE_API_KEY, …), stdin closed.</summary>
    public Task<CommandLineRun> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = StartInfo(environment, arguments);
        start.RedirectStandardInput = true;
        return RunAsync(start, stdin: "");
    }

    /// <summary>Starts `pipeline` and leaves it running (a watch), its output read line by line by the caller.</summary>
    public Process Start(IReadOnlyDictionary<string, string> environment, params string[] arguments) =>
        Process.Start(StartInfo(environment, arguments))!;

    /// <summary>
    /// The program with these arguments and only the given settings: none of the machine's PIPELINE_* variables, and
    /// this folder as HOME, so that no config file of the machine's user is read.
    /// </summary>
    private ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string> environment, string[] arguments)
    {
        var start = new ProcessStartInfo(Program) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var name in new[] { "PIPELINE_URL", "PIPELINE_API_KEY", "PIPELINE_API_KEY_FILE", "PIPELINE_CONFIG", "XDG_CONFIG_HOME" })
        {
            start.Environment.Remove(name);
        }
        start.Environment["HOME"] = Folder;
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        return start;
    }

    private static async Task<CommandLineRun> RunAsync(ProcessStartInfo start, string? stdin)
    {
        using var process = Process.Start(start)!;
        if (stdin is not null)
        {
            process.StandardInput.Close();
        }
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(limit.Token);
        return new CommandLineRun(process.ExitCode, await output, await errors);
    }
}
