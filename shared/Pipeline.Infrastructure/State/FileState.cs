using MassTransit;
using Pipeline.Contracts;

namespace Pipeline.Infrastructure.State;

/// <summary>
/// The saga of one raw file in one campaign: where it is, what happened to it and when.
/// Persisted whole as one document, guarded by <see cref="Version"/> (optimistic concurrency).
/// </summary>
public sealed class FileState : SagaStateMachineInstance, ISagaVersion
{
    public Guid CorrelationId { get; set; }
    public int Version { get; set; }
    public string CurrentState { get; set; } = "Initial";

    public string Campaign { get; set; } = "";
    public int Run { get; set; }
    public string Stream { get; set; } = "";
    public int Section { get; set; }
    public string LogicalName { get; set; } = "";
    public long Size { get; set; }
    public string Adler32 { get; set; } = "";
    public long Events { get; set; }

    /// <summary>Number of the current try; a result that names another attempt is stale and ignored.</summary>
    public int Attempt { get; set; }

    /// <summary>Failures reported by the stages, counted against the campaign's attempt budget.</summary>
    public int Failures { get; set; }

    /// <summary>Times the watchdog had to re-issue a step because nothing moved.</summary>
    public int Stalls { get; set; }

    public string? CachedName { get; set; }
    public string? Worker { get; set; }
    public DateTimeOffset? LeaseExpiresAt { get; set; }
    public double? ReconstructionSeconds { get; set; }

    public DateTimeOffset RegisteredAt { get; set; }
    public DateTimeOffset UpdatedAt { get; set; }

    /// <summary>When the watchdog should look at this file again if nothing has moved by then.</summary>
    public DateTimeOffset? Deadline { get; set; }

    public string? FailureReason { get; set; }

    /// <summary>The stage that failed last: staging, reconstruction or watchdog.</summary>
    public string? FailureStage { get; set; }

    /// <summary>The kind of the last failure, shared by every file that failed the same way (see FailureSignature).</summary>
    public string? FailureSignature { get; set; }

    /// <summary>The release that was in force at the last failure.</summary>
    public string? FailureRelease { get; set; }

    /// <summary>
    /// Its next step was not issued because its campaign is paused; the watchdog issues it once the campaign
    /// resumes, and that is not counted as a stall.
    /// </summary>
    public bool Held { get; set; }

    /// <summary>Attempts an operator granted on top of the campaign's budget when retrying.</summary>
    public int ExtraAttempts { get; set; }

    /// <summary>A reconstruction time limit an operator set for this file when retrying, in place of the release's.</summary>
    public int? TimeoutSeconds { get; set; }
    public int? LastExitCode { get; set; }
    public string? LastLogTail { get; set; }

    public List<TrackedOutput> Outputs { get; set; } = [];
    public List<string> LogNames { get; set; } = [];
    public List<HistoryEntry> History { get; set; } = [];

    public void Record(DateTimeOffset at, string state, string @event, string? detail = null) =>
        History.Add(new HistoryEntry(at, state, @event, Attempt, detail));
}

/// <summary>One line of a file's history: the state it entered (or stayed in) and why.</summary>
public sealed record HistoryEntry(DateTimeOffset At, string State, string Event, int Attempt, string? Detail);

/// <summary>An output of the accepted reconstruction attempt, followed until it is archived.</summary>
public sealed class TrackedOutput
{
    public OutputFile Output { get; set; } = null!;
    public string? MergedName { get; set; }
    public bool Archived { get; set; }
}
