using System.Diagnostics;

namespace Pipeline.Tests.Support;

/// <summary>What one run of a program printed and exited with.</summary>
public sealed record ToolRun(int ExitCode, string Output, string Errors)
{
    /// <summary>Both outputs, as a terminal would have shown them (stdout first).</summary>
    public string Printed => Output + Errors;

    public override string ToString() => $"exit {ExitCode}\nstdout:\n{Output}\nstderr:\n{Errors}";
}

/// <summary>
/// Runs a program to its end from an argument list (never a shell string), with its standard input closed, reading
/// both its outputs whole, and kills it if it outlives its limit: what the tests do with every tool they call.
/// </summary>
public static class Tool
{
    /// <param name="environment">Variables to set; a null value removes the variable the test process has.</param>
    public static async Task<ToolRun> RunAsync(string program, IEnumerable<string> arguments,
        IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null, TimeSpan? limit = null)
    {
        var start = StartInfo(program, arguments, environment);
        start.RedirectStandardInput = true;
        if (workingDirectory is not null)
        {
            start.WorkingDirectory = workingDirectory;
        }
        using var process = Process.Start(start)!;
        process.StandardInput.Close();
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit ?? TimeSpan.FromMinutes(5));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', arguments)} ran longer than {(limit ?? TimeSpan.FromMinutes(5)).TotalSeconds} s");
        }
        return new ToolRun(process.ExitCode, await output, await errors);
    }

    /// <summary>How to start the program with both outputs redirected: for one the caller keeps running and reads itself.</summary>
    public static ProcessStartInfo StartInfo(string program, IEnumerable<string> arguments, IReadOnlyDictionary<string, string?>? environment = null)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null)
            {
                start.Environment.Remove(name);
            }
            else
            {
                start.Environment[name] = value;
            }
        }
        return start;
    }
}
