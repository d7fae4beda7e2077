namespace Pipeline.Infrastructure.Storage;

/// <summary>What the disk under a folder has free, as the file system reports it (statvfs on Linux).</summary>
public static class DiskSpace
{
    /// <summary>Bytes available to this process on the file system holding <paramref name="path"/>, or null when it cannot be read.</summary>
    public static long? AvailableBytes(string path)
    {
        try
        {
            return Directory.Exists(path) ? new DriveInfo(path).AvailableFreeSpace : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Whether an I/O error is the disk being full (ENOSPC on Linux, ERROR_DISK_FULL or ERROR_HANDLE_DISK_FULL on Windows).</summary>
    public static bool IsDiskFull(IOException exception) =>
        exception.HResult is 28 || (exception.HResult & 0xFFFF) is 112 or 39;

    /// <summary>Whether the exception, or one it wraps, is the disk being full.</summary>
    public static bool IsDiskFull(Exception exception)
    {
        for (var current = exception; current is not null; current = current.InnerException)
        {
            if (current is IOException io && IsDiskFull(io))
            {
                return true;
            }
        }
        return false;
    }
}
