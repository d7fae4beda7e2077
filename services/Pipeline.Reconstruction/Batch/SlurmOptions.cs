using System.ComponentModel.DataAnnotations;

namespace Pipeline.Reconstruction.Batch;

/// <summary>How a worker with <c>Executor = Slurm</c> reaches the cluster and what every job asks of it.</summary>
public sealed class SlurmOptions
{
    public const string Section = "Pipeline:Reconstruction:Slurm";

    /// <summary>The cluster's slurm.conf when it is not the system's (given to every Slurm command as SLURM_CONF).</summary>
    public string? ConfigFile { get; set; }

    /// <summary>The partition, account and quality of service of every job; left out of the submission when empty.</summary>
    public string? Partition { get; set; }

    public string? Account { get; set; }

    public string? Qos { get; set; }

    [Range(1, 1024)]
    public int CpusPerJob { get; set; } = 1;

    /// <summary>Memory per job (sbatch --mem); 0 leaves it to the partition's default.</summary>
    [Range(0, 4 << 20)]
    public int MemoryMegabytes { get; set; } = 2048;

    /// <summary>
    /// Every job's name starts with this, then the file id and the attempt (<c>pipeline-FILEID-aN</c>): a restarted
    /// worker finds its jobs again by name. Distinct per system sharing one cluster account.
    /// </summary>
    [RegularExpression("^[A-Za-z][A-Za-z0-9_.]{0,31}$")]
    public string JobNamePrefix { get; set; } = "pipeline";

    /// <summary>How often the jobs in flight are looked at, all in one squeue call.</summary>
    [Range(0.2, 600)]
    public double PollSeconds { get; set; } = 15;

    /// <summary>How often the cluster is searched for this system's jobs that no worker follows (see SlurmAdoption).</summary>
    [Range(0.2, 3600)]
    public double AdoptSeconds { get; set; } = 30;

    /// <summary>How long a Slurm command may take before it counts as failed.</summary>
    [Range(1, 600)]
    public int CommandTimeoutSeconds { get; set; } = 60;

    /// <summary>
    /// How long a job the cluster no longer lists, and that this worker never saw end, is looked for before it counts
    /// as lost (a controller restarting, or a job purged before the worker looked).
    /// </summary>
    [Range(1, 86400)]
    public int MissingSeconds { get; set; } = 120;

    /// <summary>
    /// The folder a job starts in on its compute node, a disk of the node's own (the job works in a folder it makes
    /// there, and removes it at its end); nothing the worker writes needs to be visible there.
    /// </summary>
    [Required]
    public string NodeFolder { get; set; } = "/tmp";

    /// <summary>
    /// The command that runs the job wrapper on a compute node, before its arguments (<c>job SPEC</c>): by default this
    /// worker's own program as it was started (the nodes see the software where the worker does, as they see the release's).
    /// </summary>
    public string[] WrapperCommand { get; set; } = [];

    /// <summary>The wrapper's command as configured, or this program's.</summary>
    public IReadOnlyList<string> EffectiveWrapperCommand =>
        WrapperCommand.Length > 0 ? WrapperCommand
        : Environment.ProcessPath is { } host && Path.GetFileNameWithoutExtension(host) == "dotnet"
            ? [host, Path.Combine(AppContext.BaseDirectory, "Pipeline.Reconstruction.dll")]
            : [Environment.ProcessPath ?? Path.Combine(AppContext.BaseDirectory, "Pipeline.Reconstruction")];
}
