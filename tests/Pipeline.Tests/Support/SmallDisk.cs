using System.Diagnostics;

namespace Pipeline.Tests.Support;

/// <summary>
/// A small file system of its own (a tmpfs), for tests of a disk that fills. Mounting needs root (or CAP_SYS_ADMIN):
/// where the mount is refused, <see cref="Unavailable"/> says why and the test is skipped with that reason.
/// </summary>
public sealed class SmallDisk : IDisposable
{
    private SmallDisk(string path, string? unavailable)
    {
        Path = path;
        Unavailable = unavailable;
    }

    public string Path { get; }

    /// <summary>Why no small disk could be mounted here, or null when it is mounted.</summary>
    public string? Unavailable { get; }

    public long AvailableBytes => new DriveInfo(Path).AvailableFreeSpace;

    public static SmallDisk Mount(long bytes)
    {
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "pipeline-small-disks", Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(path);
        if (!OperatingSystem.IsLinux())
        {
            return new SmallDisk(path, "A small disk is a Linux tmpfs; this is not Linux.");
        }
        var (exit, output) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", path);
        return new SmallDisk(path, exit == 0 ? null
            : $"Mounting a {bytes}-byte tmpfs needs root or CAP_SYS_ADMIN, which this test run lacks (mount exited {exit}: {output.Trim()}).");
    }

    /// <summary>Writes a file that leaves about <paramref name="leaveFree"/> bytes of the disk free.</summary>
    public string Fill(long leaveFree)
    {
        var filler = System.IO.Path.Combine(Path, "filler.bin");
        using var file = File.Create(filler);
        var block = new byte[64 << 10];
        while (AvailableBytes - block.Length >= leaveFree)
        {
            file.Write(block);
            file.Flush();
        }
        return filler;
    }

    public void Dispose()
    {
        if (Unavailable is null)
        {
            Run("umount", "-l", Path);
        }
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Still busy: the OS temp cleaner takes it.
        }
    }

    private static (int Exit, string Output) Run(string program, params string[] arguments)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        try
        {
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEnd() + process.StandardError.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (-1, ex.Message);
        }
    }
}
