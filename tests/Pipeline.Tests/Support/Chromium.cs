using System.Diagnostics;

namespace Pipeline.Tests.Support;

/// <summary>Debian's Chromium, headless: loads a page, lets its scripts run, and returns the DOM they left.</summary>
public static class Chromium
{
    public const string Executable = "/usr/bin/chromium";

    public static async Task<string> DumpDomAsync(Uri page, TimeSpan scriptTime)
    {
        if (!File.Exists(Executable))
        {
            throw new InvalidOperationException($"{Executable} is missing: `make test` installs Debian's chromium package.");
        }
        using var profile = new TempDirectory();
        var start = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var argument in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            // Nothing but the page under test: no background traffic to hosts this machine cannot reach.
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
            $"--user-data-dir={profile.Path}",
            // Virtual time runs the page's timers and waits for its requests, up to this budget.
            $"--virtual-time-budget={(int)scriptTime.TotalMilliseconds}",
            "--dump-dom", page.ToString(),
        })
        {
            start.ArgumentList.Add(argument);
        }
        using var chromium = Process.Start(start)!;
        var dom = chromium.StandardOutput.ReadToEndAsync();
        var errors = chromium.StandardError.ReadToEndAsync();
        using var limit = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await chromium.WaitForExitAsync(limit.Token);
        if (chromium.ExitCode != 0)
        {
            throw new InvalidOperationException($"chromium exited with {chromium.ExitCode}: {await errors}");
        }
        return await dom;
    }
}
