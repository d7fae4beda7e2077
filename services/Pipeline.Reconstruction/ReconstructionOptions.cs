using System.ComponentModel.DataAnnotations;

namespace Pipeline.Reconstruction;

public sealed class ReconstructionOptions
{
    public const string Section = "Pipeline:Reconstruction";

    /// <summary>Jobs this process runs at once (one message each); 0 means one per core.</summary>
    [Range(0, 1024)]
    public int Slots { get; set; }

    public int EffectiveSlots => Slots > 0 ? Slots : Environment.ProcessorCount;

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
