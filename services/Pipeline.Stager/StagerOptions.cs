using System.ComponentModel.DataAnnotations;

namespace Pipeline.Stager;

public sealed class StagerOptions
{
    public const string Section = "Pipeline:Stager";

    /// <summary>Stage requests gathered into one batch, so that files on the same tape volume are read in one mount.</summary>
    [Range(1, 1000)]
    public int BatchSize { get; set; } = 64;

    /// <summary>How long a batch waits for more requests after its first one.</summary>
    [Range(1, 60_000)]
    public int BatchWindowMilliseconds { get; set; } = 100;

    /// <summary>Volumes read at once by this process. More than the library has drives would make them take turns on a drive, remounting.</summary>
    [Range(1, 64)]
    public int Concurrency { get; set; } = 1;

    /// <summary>
    /// Files read at once by this process from an archive that is not a tape library (disk, or a copy tool): no volume
    /// to keep mounted. Defaults to the cores: more makes small files slower, not faster (measured by make bench).
    /// </summary>
    [Range(1, 256)]
    public int DiskConcurrency { get; set; } = Environment.ProcessorCount;
}
