using System.IO.Pipes;
using System.Runtime.InteropServices;

namespace Pipeline.Infrastructure.Processes;

/// <summary>
/// Enlarges the kernel buffer of a pipe a command writes a file's bytes into (<c>fcntl F_SETPIPE_SZ</c>). With Linux's
/// default 64 KiB the writer and the reader take turns for every 64 KiB; a larger buffer lets each run longer. Advice
/// only: where the call is missing (not Linux) or refused (above <c>/proc/sys/fs/pipe-max-size</c>), nothing changes.
/// </summary>
internal static class PipeCapacity
{
    private const int SetPipeSize = 1031;

    /// <summary>The capacity asked for a command's output: 1 MiB, the default ceiling for an unprivileged process.</summary>
    public const int OutputBytes = 1 << 20;

    public static bool TryEnlarge(Stream pipe, int bytes)
    {
        if (!OperatingSystem.IsLinux() || pipe is not PipeStream { SafePipeHandle: var handle })
        {
            return false;
        }
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return SetSize((int)handle.DangerousGetHandle(), SetPipeSize, bytes) >= bytes;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [DllImport("libc", EntryPoint = "fcntl")]
    private static extern int SetSize(int descriptor, int command, int bytes);
}
