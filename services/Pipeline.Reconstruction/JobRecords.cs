namespace Pipeline.Reconstruction;

/// <summary>What a job's folder keeps of the request it was run for.</summary>
public sealed record JobRequest(Pipeline.Contracts.ReconstructFile Message, int TimeLimitSeconds);

/// <summary>A batch job taken over from the batch system: its folder in scratch, its id, its time limit.</summary>
public sealed record AdoptedJob(string JobDirectory, long BatchJobId, int TimeLimitSeconds);

public enum AdoptionOutcome
{
    Adopted,

    /// <summary>This process follows the attempt already.</summary>
    AlreadyFollowed,

    /// <summary>Every slot is busy: tried again later.</summary>
    NoFreeSlot,

    /// <summary>A live worker holds the lease: tried again later, in case it dies.</summary>
    HeldElsewhere,

    /// <summary>The attempt is stale or the file moved on: the job's result would be ignored.</summary>
    Superseded,
}

public enum DispatchOutcome
{
    /// <summary>The lease was granted and the job runs in the background.</summary>
    Started,

    /// <summary>This attempt already runs in this process (a repeated delivery).</summary>
    AlreadyRunning,

    /// <summary>Every slot stayed busy for the whole wait: the request should go back to the queue.</summary>
    NoFreeSlot,

    /// <summary>The orchestrator refused the lease: the attempt is stale or another worker holds it.</summary>
    Refused,
}
