using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// Tells the kernel that a file's cached pages are not needed (<c>posix_fadvise DONTNEED</c>). Advice only:
/// pages still being written are kept, and where the call is missing (not Linux) or refused, nothing happens.
/// </summary>
public static class PageCache
{
    private const int DontNeed = 4;

    /// <summary>Lets go of the cached pages of a range of an open file (length 0: to its end); false if the advice could not be given.</summary>
    public static bool LetGo(SafeFileHandle handle, long offset, long length)
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return PosixFadvise((int)handle.DangerousGetHandle(), offset, length, DontNeed) == 0;
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

    /// <summary>Lets go of every cached page of a file that is on disk (written and flushed).</summary>
    public static bool LetGo(string path)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return LetGo(handle, 0, 0);
    }

    [DllImport("libc", EntryPoint = "posix_fadvise")]
    private static extern int PosixFadvise(int fd, long offset, long length, int advice);
}
