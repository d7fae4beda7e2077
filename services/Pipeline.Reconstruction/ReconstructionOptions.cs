using System.ComponentModel.DataAnnotations;

namespace Pipeline.Reconstruction;

/// <summary>Where a worker runs the release: as its own child processes, or as jobs of the site's batch system.</summary>
public enum ReleaseExecutor
{
    /// <summary>Child processes of the worker, one per slot (the embedded default).</summary>
    Local,

    /// <summary>Slurm batch jobs, submitted with sbatch and followed with squeue (see <see cref="Batch.SlurmOptions"/>).</summary>
    Slurm,
}

public sealed class ReconstructionOptions
{
    public const string Section = "Pipeline:Reconstruction";

    /// <summary>Batch jobs a Slurm worker keeps in flight when <see cref="Slots"/> is 0.</summary>
    public const int DefaultBatchSlots = 100;

    public ReleaseExecutor Executor { get; set; } = ReleaseExecutor.Local;

    /// <summary>
    /// Jobs this worker has in flight at once (one message each): child processes with the local executor (0: one per
    /// core), batch jobs pending or running with Slurm (0: <see cref="DefaultBatchSlots"/>).
    /// </summary>
    [Range(0, 10000)]
    public int Slots { get; set; }

    public int EffectiveSlots => Slots > 0 ? Slots : Executor == ReleaseExecutor.Slurm ? DefaultBatchSlots : Environment.ProcessorCount;

    /// <summary>How often a running job renews its lease with the orchestrator.</summary>
    [Range(1, 3600)]
    public int HeartbeatSeconds { get; set; } = 30;

    /// <summary>How long a request waits for a free slot before it goes back to the queue.</summary>
    [Range(1, 600)]
    public int SlotWaitSeconds { get; set; } = 60;

    /// <summary>
    /// Check the staged input's size and Adler-32 against the catalogue before the release reads it (one more read
    /// of the input, usually from the page cache it was just written through).
    /// </summary>
    public bool VerifyInput { get; set; } = true;

    /// <summary>How long to wait for the orchestrator to answer a claim.</summary>
    [Range(1, 3600)]
    public int ClaimTimeoutSeconds { get; set; } = 30;
}
