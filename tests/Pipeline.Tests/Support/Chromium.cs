namespace Pipeline.Tests.Support;

/// <summary>Debian's Chromium, headless: loads a page, lets its scripts run, and returns the DOM they left or a picture of it.</summary>
public static class Chromium
{
    public const string Executable = "/usr/bin/chromium";

    public static async Task<string> DumpDomAsync(Uri page, TimeSpan scriptTime) =>
        await RunAsync(page, scriptTime, ["--dump-dom"]);

    /// <summary>Saves a PNG of the page, as wide as a desktop screen and tall enough for the whole of it.</summary>
    public static async Task ScreenshotAsync(Uri page, TimeSpan scriptTime, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await RunAsync(page, scriptTime, [$"--screenshot={path}", "--window-size=1400,4200", "--hide-scrollbars"]);
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"chromium wrote no screenshot to {path}");
        }
    }

    /// <summary>
    /// Where a test keeps what a person may want to look at after the run (screenshots): TestResults/ at the
    /// repository's root, which git ignores.
    /// </summary>
    public static string ArtefactPath(string name)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "Pipeline.sln")))
        {
            directory = directory.Parent;
        }
        return Path.Combine(directory?.FullName ?? AppContext.BaseDirectory, "TestResults", "screenshots", name);
    }

    private static async Task<string> RunAsync(Uri page, TimeSpan scriptTime, string[] what)
    {
        if (!File.Exists(Executable))
        {
            throw new InvalidOperationException($"{Executable} is missing: `make test` installs Debian's chromium package.");
        }
        using var profile = new TempDirectory();
        var run = await Tool.RunAsync(Executable, new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            // Nothing but the page under test: no background traffic to hosts this machine cannot reach.
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
            $"--user-data-dir={profile.Path}",
            // Virtual time runs the page's timers and waits for its requests, up to this budget.
            $"--virtual-time-budget={(int)scriptTime.TotalMilliseconds}",
        }.Concat(what).Append(page.ToString()), limit: TimeSpan.FromMinutes(2));
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException($"chromium exited with {run.ExitCode}: {run.Errors}");
        }
        return run.Output;
    }
}
