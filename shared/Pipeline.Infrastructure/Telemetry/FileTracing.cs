using System.Buffers.Binary;
using System.Diagnostics;
using Pipeline.Contracts;

namespace Pipeline.Infrastructure.Telemetry;

/// <summary>
/// One trace per file. Its W3C trace id is the file id (its 32 hex digits, without dashes), so an operator who has a
/// file id has its trace, and every service puts its work on a file into that trace without asking anyone: each
/// message about a file is consumed under a span of the file's trace, whichever trace the message itself travelled in
/// (a watchdog's, a dispatcher's, a merged file's, the run's that registered it). That other trace is linked, not
/// joined. Every span is a child of the file's root context, whose span id is derived from the file id as well; no
/// service holds the root span itself, so a trace viewer shows the file's steps side by side under a root it never
/// received.
/// </summary>
public static class FileTracing
{
    public const string SourceName = "Pipeline";

    public static readonly ActivitySource Source = new(SourceName);

    public const string FileIdTag = "pipeline.file.id";
    public const string RunTag = "pipeline.run";
    public const string StreamTag = "pipeline.stream";
    public const string CampaignTag = "pipeline.campaign";
    public const string AttemptTag = "pipeline.attempt";
    public const string StageTag = "pipeline.stage";
    public const string OutcomeTag = "pipeline.outcome";

    /// <summary>The stage each per-file message belongs to; a message not named here controls the file (a stall, a retry, a cancellation).</summary>
    private static readonly Dictionary<string, string> Stages = new(StringComparer.Ordinal)
    {
        [nameof(FileRegistered)] = "registration",
        [nameof(CheckCalibration)] = "registration",
        [nameof(StageFile)] = "staging",
        [nameof(FileWaiting)] = "staging",
        [nameof(FileStaged)] = "staging",
        [nameof(StagingFailed)] = "staging",
        [nameof(DiscardStagedFile)] = "staging",
        [nameof(DispatchReconstruction)] = "reconstruction",
        [nameof(ReconstructFile)] = "reconstruction",
        [nameof(ClaimReconstruction)] = "reconstruction",
        [nameof(FileReconstructed)] = "reconstruction",
        [nameof(ReconstructionFailed)] = "reconstruction",
        [nameof(CollectJobLogs)] = "collection",
        [nameof(JobLogsCollected)] = "collection",
        [nameof(MergeOutput)] = "merge",
        [nameof(OutputsMerged)] = "merge",
        [nameof(OutputsArchived)] = "archive",
    };

    public static string StageOf(string messageType) => Stages.GetValueOrDefault(messageType, "control");

    /// <summary>The file's trace: trace id = the file id, parent span id derived from it.</summary>
    public static ActivityContext FileContext(Guid fileId)
    {
        var traceId = ActivityTraceId.CreateFromString(TraceIdOf(fileId));
        Span<byte> id = stackalloc byte[16];
        fileId.TryWriteBytes(id);
        // The two halves folded into the root span id: a fixed function of the file id, and never all zeros (invalid in W3C).
        var root = BinaryPrimitives.ReadUInt64LittleEndian(id[..8]) ^ BinaryPrimitives.ReadUInt64LittleEndian(id[8..]);
        Span<byte> span = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(span, root == 0 ? 1 : root);
        return new ActivityContext(traceId, ActivitySpanId.CreateFromBytes(span), ActivityTraceFlags.Recorded, isRemote: true);
    }

    /// <summary>The trace id of a file, as it appears in logs and trace viewers.</summary>
    public static string TraceIdOf(Guid fileId) => fileId.ToString("N");

    /// <summary>
    /// Starts the span of a service's work on a file (<paramref name="name"/>: the service and what it does), in the
    /// file's trace, linked to the trace the work came from when that is another. Null when nothing listens.
    /// </summary>
    public static Activity? StartStep(string name, string stage, IFileMessage file, ActivityKind kind = ActivityKind.Consumer)
    {
        var context = FileContext(file.FileId);
        var current = Activity.Current?.Context;
        ActivityLink[]? links = current is { } came && came.TraceId != context.TraceId && came != default ? [new ActivityLink(came)] : null;
        var span = Source.StartActivity(name, kind, context, links: links);
        if (span is null)
        {
            return null;
        }
        span.SetTag(FileIdTag, file.FileId.ToString());
        span.SetTag(RunTag, file.Run);
        span.SetTag(StreamTag, file.Stream);
        span.SetTag(CampaignTag, file.Campaign);
        span.SetTag(StageTag, stage);
        if (file is IFileAttemptMessage attempt)
        {
            span.SetTag(AttemptTag, attempt.Attempt);
        }
        return span;
    }

    /// <summary>
    /// Says how the step under way ended for the file ("staged as …", "failed: …", the file's new state), on the
    /// innermost file span. The last word counts (an event can move a file through two states); with
    /// <paramref name="unlessSaid"/>, only if nothing was said yet (the consume filter's "completed").
    /// </summary>
    public static void Outcome(string outcome, bool unlessSaid = false)
    {
        for (var span = Activity.Current; span is not null; span = span.Parent)
        {
            if (span.Source == Source)
            {
                if (!unlessSaid || span.GetTagItem(OutcomeTag) is null)
                {
                    span.SetTag(OutcomeTag, outcome);
                }
                return;
            }
        }
    }

    /// <summary>
    /// Starts a trace of its own for work on many files at once (a merged file: written, archived), linked to each
    /// file's trace, so that the work is found from every file and appears in none of them.
    /// </summary>
    public static Activity? StartShared(string name, IEnumerable<Guid> fileIds)
    {
        // A root, whatever was current: the caller's own flow (its async method) goes on under the returned span.
        Activity.Current = null;
        return Source.StartActivity(name, ActivityKind.Internal, parentContext: default,
            links: [.. fileIds.Distinct().Select(id => new ActivityLink(FileContext(id)))]);
    }
}
