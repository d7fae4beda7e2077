using System.ComponentModel.DataAnnotations;

namespace Pipeline.Infrastructure.Archive;

/// <summary>
/// How each archive area is reached (section <c>Pipeline:Archives:&lt;area&gt;</c>): a folder, a folder behind a
/// simulated tape library, an endpoint in front of tape, or an experiment's own mass storage through its copy tool.
/// The area "archive" always exists (raw files are read from it); datasets may ask for copies on others.
/// </summary>
public sealed class ArchiveAreaOptions
{
    public const string Section = "Pipeline:Archives";

    public ArchiveKind Kind { get; set; } = ArchiveKind.Disk;

    public TapeOptions Tape { get; set; } = new();

    public CommandArchiveOptions Command { get; set; } = new();

    public NearlineOptions Nearline { get; set; } = new();
}

public enum ArchiveKind
{
    /// <summary>A folder (the storage area of the same name).</summary>
    Disk,

    /// <summary>A folder behind a simulated tape library: drives, mounts, positioning and a sequential rate.</summary>
    Tape,

    /// <summary>An external copy tool (xrdcp, gfal-copy, encp...) given as argument-list templates.</summary>
    Command,

    /// <summary>
    /// The storage area of the same name on an endpoint in front of tape (root://): recalls through prepare requests,
    /// archived only once the endpoint reports the tape copy.
    /// </summary>
    Nearline,
}

/// <summary>
/// The simulated library: files in one folder share a volume (so a dataset's merged files, and a run's raw
/// files of one stream, sit together), in name order. A drive switching volumes pays the mount time; a read
/// that is not the next file on the mounted volume pays the positioning time; bytes move at the given rate.
/// </summary>
public sealed class TapeOptions
{
    [Range(1, 64)]
    public int Drives { get; set; } = 2;

    [Range(0, 3600)]
    public double MountSeconds { get; set; } = 0.05;

    [Range(0, 3600)]
    public double PositionSeconds { get; set; } = 0.01;

    /// <summary>Sequential rate of one drive in MB/s (10^6 bytes); 0 is as fast as the disk behind it.</summary>
    [Range(0, 100_000)]
    public double MegabytesPerSecond { get; set; } = 300;
}

/// <summary>
/// An external copy tool. Every command is an argument list (never a shell string) with placeholders:
/// {source} (a local file to write from), {url} (the file's address: <see cref="Url"/> + its name), {name}.
/// </summary>
public sealed class CommandArchiveOptions
{
    /// <summary>Prefix of every file's address, e.g. <c>root://eos.example.org//eos/experiment/archive/</c>.</summary>
    public string Url { get; set; } = "";

    /// <summary>Copies {source} to {url}; exit code 0 means copied.</summary>
    public List<string> Write { get; set; } = [];

    /// <summary>Writes the bytes of {url} to standard output (e.g. <c>xrdcp -s {url} -</c>), so they are checksummed as they arrive.</summary>
    public List<string> Read { get; set; } = [];

    /// <summary>Prints the Adler-32 the storage computes for {url} (the first 8-hex-digit word counts); exit code 0 also means the file exists.</summary>
    public List<string> Checksum { get; set; } = [];

    /// <summary>Tries per file before the step fails with the last reason.</summary>
    [Range(1, 20)]
    public int Attempts { get; set; } = 3;

    [Range(0, 3600)]
    public double RetryDelaySeconds { get; set; } = 2;

    [Range(1, 7 * 24 * 3600)]
    public double TimeoutSeconds { get; set; } = 3600;
}

/// <summary>
/// How a nearline archive waits (section <c>Pipeline:Archives:&lt;area&gt;:Nearline</c>). A recall is given
/// <see cref="RecallFloorSeconds"/> plus <see cref="RecallSecondsPerFile"/> for every file queued in front of it and
/// itself; a migration still pending after <see cref="MigrationAlertSeconds"/> raises an alert (the file keeps waiting).
/// </summary>
public sealed class NearlineOptions
{
    [Range(0.05, 3600)]
    public double PollSeconds { get; set; } = 10;

    [Range(1, 7 * 24 * 3600)]
    public double RecallFloorSeconds { get; set; } = 900;

    [Range(0, 24 * 3600)]
    public double RecallSecondsPerFile { get; set; } = 60;

    /// <summary>A file still offline this long after it was asked for is asked for again (a restarted endpoint may have lost the request).</summary>
    [Range(1, 24 * 3600)]
    public double RecallRepeatSeconds { get; set; } = 600;

    [Range(1, 30 * 24 * 3600)]
    public double MigrationAlertSeconds { get; set; } = 8 * 3600;
}
