using System.Diagnostics;
using System.Text;

namespace Pipeline.Infrastructure.Processes;

/// <summary>How an external command ended: its exit code (null if killed), what it printed (bounded) and the end of its error output.</summary>
public sealed record CommandOutcome(int? ExitCode, bool TimedOut, string Output, string ErrorTail)
{
    public bool Succeeded => ExitCode == 0;

    public string Describe() =>
        TimedOut ? "timed out and was killed"
        : $"exited with code {ExitCode}{(ErrorTail.Length > 0 ? ": " + ErrorTail : "")}";
}

/// <summary>Runs a command from an argument list (never through a shell), with a time limit; kills its process tree when it runs over.</summary>
public static class ExternalCommand
{
    private const int MaxCapturedChars = 64 << 10;
    private const int ErrorTailChars = 500;

    /// <param name="readOutput">If given, receives standard output as a byte stream (a copy tool writing a file to stdout); otherwise it is captured as text.</param>
    /// <param name="writeInput">If given, writes the command's standard input (a copy tool reading a file from stdin), which is closed after it.</param>
    public static async Task<CommandOutcome> RunAsync(
        IReadOnlyList<string> command, Func<Stream, CancellationToken, Task>? readOutput, TimeSpan timeout, CancellationToken cancellationToken,
        Func<Stream, CancellationToken, Task>? writeInput = null, IReadOnlyDictionary<string, string>? environment = null)
    {
        using var process = Start(command, environment);
        if (writeInput is null)
        {
            process.StandardInput.Close();
        }
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        var errors = ReadTailAsync(process.StandardError, ErrorTailChars);
        var output = Task.FromResult("");
        try
        {
            var reading = readOutput is null
                ? (output = ReadTailAsync(process.StandardOutput, MaxCapturedChars))
                : readOutput(process.StandardOutput.BaseStream, limit.Token);
            if (writeInput is not null)
            {
                await using (var input = process.StandardInput.BaseStream)
                {
                    await writeInput(input, limit.Token);
                }
            }
            await reading;
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            cancellationToken.ThrowIfCancellationRequested();
            return new CommandOutcome(null, true, await output, (await errors).Trim());
        }
        catch (IOException) when (writeInput is not null && ExitedWithFailure(process))
        {
            // The tool stopped reading because it failed (refused, unreachable): its own message says why, the broken
            // pipe does not. A source that failed leaves the tool waiting for input instead, and is rethrown below.
            return new CommandOutcome(process.ExitCode, false, await output, (await errors).Trim());
        }
        catch
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            throw;
        }
        return new CommandOutcome(process.ExitCode, false, await output, (await errors).Trim());
    }

    // Blocks the catch filter for at most two seconds, only when a write into the tool failed.
    private static bool ExitedWithFailure(Process process) => process.WaitForExit(TimeSpan.FromSeconds(2)) && process.ExitCode != 0;

    /// <summary>
    /// Starts a command whose standard output is a file's bytes (a copy tool writing to stdout) and returns a stream of
    /// them; at the end of the bytes the stream waits for the command, and throws what <paramref name="failure"/>
    /// makes of its outcome when it did not succeed, so a reader never takes a cut-off copy for a whole one.
    /// </summary>
    public static Stream OpenOutput(IReadOnlyList<string> command, TimeSpan timeout, Func<CommandOutcome, Exception> failure, IReadOnlyDictionary<string, string>? environment = null)
    {
        var process = Start(command, environment);
        process.StandardInput.Close();
        PipeCapacity.TryEnlarge(process.StandardOutput.BaseStream, PipeCapacity.OutputBytes);
        return new CommandOutputStream(process, ReadTailAsync(process.StandardError, ErrorTailChars), timeout, failure);
    }

    private static Process Start(IReadOnlyList<string> command, IReadOnlyDictionary<string, string>? environment)
    {
        if (command.Count == 0)
        {
            throw new ArgumentException("The command is empty.", nameof(command));
        }
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in command.Skip(1))
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        return Process.Start(start) ?? throw new InvalidOperationException($"Could not start {command[0]}.");
    }

    internal static async Task<string> ReadTailAsync(StreamReader reader, int keep)
    {
        var text = new StringBuilder();
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            text.Append(buffer, 0, read);
            if (text.Length > 2 * keep)
            {
                text.Remove(0, text.Length - keep);
            }
        }
        return text.Length > keep ? text.ToString(text.Length - keep, keep) : text.ToString();
    }
}
