using System.Diagnostics;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Infrastructure.Processes;

/// <summary>
/// The standard output of a running command, read as a stream. The end of the bytes is the end of the file only if
/// the command then exits with 0: otherwise the last read throws. Disposing it early kills the command.
/// </summary>
internal sealed class CommandOutputStream(Process process, Task<string> errors, TimeSpan timeout, Func<CommandOutcome, Exception> failure)
    : ForwardReadStream(process.StandardOutput.BaseStream)
{
    // One deadline for the whole output, armed once: a timer per read cost measurably at pipe-sized reads.
    private readonly CancellationTokenSource _deadline = StartDeadline(timeout);

    public override long Length => throw new NotSupportedException("A command's output has no length until it ends.");

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        using var either = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token) : null;
        var token = either?.Token ?? _deadline.Token;
        try
        {
            var read = await Inner.ReadAsync(buffer, token);
            if (read == 0)
            {
                await process.WaitForExitAsync(token);
                if (process.ExitCode != 0)
                {
                    throw failure(new CommandOutcome(process.ExitCode, false, "", (await errors).Trim()));
                }
            }
            return read;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Stop();
            throw failure(new CommandOutcome(null, true, "", ""));
        }
    }

    private static CancellationTokenSource StartDeadline(TimeSpan timeout)
    {
        var deadline = new CancellationTokenSource();
        deadline.CancelAfter(timeout);
        return deadline;
    }

    private void Stop()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        catch (InvalidOperationException)
        {
            // It ended meanwhile.
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Stop();
        }
        base.Dispose(disposing);
        if (disposing)
        {
            process.Dispose();
            _deadline.Dispose();
        }
    }
}
