using System.Diagnostics;
using System.Globalization;

namespace Pipeline.Benchmarks;

/// <summary>
/// Peak resident memory measured in a child process of its own (this benchmark run again with a child's arguments),
/// so that nothing else the run did counts in it.
/// </summary>
public static class PeakMemory
{
    /// <summary>Runs the benchmark as a child with <paramref name="arguments"/>; returns the peak RSS in MB it printed last.</summary>
    public static async Task<double> OfChildAsync(params string[] arguments)
    {
        var start = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true };
        if (Environment.ProcessPath!.EndsWith("dotnet", StringComparison.Ordinal))
        {
            start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Pipeline.Benchmarks.dll"));
        }
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{arguments[0]} failed: {output}");
        }
        return double.Parse(output.Trim().Split('\n')[^1], CultureInfo.InvariantCulture);
    }

    /// <summary>In the child, at its end: prints this process's peak RSS (VmHWM) in MB.</summary>
    public static void PrintOwnPeak()
    {
        var peakKb = File.ReadAllLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1];
        Console.WriteLine((long.Parse(peakKb, CultureInfo.InvariantCulture) / 1024.0).ToString("F1", CultureInfo.InvariantCulture));
    }
}
