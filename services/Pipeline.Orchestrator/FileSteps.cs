using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// What the state machine does on a transition: writes down the file's facts as a message brings them, and issues a
/// step (a stage-in, a reconstruction, merges) with its deadline, or holds it while the file's campaign is paused. The
/// messages come from <see cref="FileMessages"/>, the deadlines from <see cref="FileDeadlines"/>; nothing here reads
/// anything but the saga, the message and its <see cref="FileFacts"/>.
/// </summary>
public sealed class FileSteps(FileDeadlines deadlines, TimeProvider time)
{
    public FileDeadlines Deadlines => deadlines;

    public static FileFacts Facts<T>(BehaviorContext<FileState, T> context)
        where T : class =>
        context.TryGetPayload(out FileFacts? facts)
            ? facts
            : throw new InvalidOperationException($"The file sagas' endpoint has no {nameof(FileFactsFilter<T>)}: what the machine must know is not known.");

    /// <summary>The file's facts, and its campaign's terms, as its registration gives them.</summary>
    public void Register(FileState saga, FileRegistered message)
    {
        saga.Campaign = message.Campaign;
        saga.Run = message.Run;
        saga.Stream = message.Stream;
        saga.Section = message.Section;
        saga.LogicalName = message.LogicalName;
        saga.Size = message.Size;
        saga.Adler32 = message.Adler32;
        saga.Events = message.Events;
        saga.RunConditions = message.RunConditions;
        saga.AwaitedCalibration = message.AwaitedCalibration;
        saga.Release = message.Terms.Release;
        saga.Datasets = [.. message.Terms.Datasets];
        saga.CalibrationTag = message.Terms.CalibrationTag;
        saga.MaxAttempts = message.Terms.MaxAttempts;
        saga.Simulated = message.Terms.Simulated;
        saga.RegisteredAt = time.GetUtcNow();
    }

    /// <summary>The current attempt's outputs: the file is no longer failing (earlier failures stay in its history).</summary>
    public static void AcceptOutputs(FileState saga, FileReconstructed message)
    {
        saga.Outputs = [.. message.Outputs.Select(o => new TrackedOutput { Output = o })];
        saga.ReconstructionSeconds = message.Seconds;
        saga.LeaseExpiresAt = null;
        saga.FailureReason = null;
    }

    public static void MarkMerged(FileState saga, string mergedName, IReadOnlyList<string> outputIds, bool archived)
    {
        foreach (var tracked in saga.Outputs.Where(o => outputIds.Contains(o.Output.OutputId)))
        {
            tracked.MergedName = mergedName;
            tracked.Archived |= archived;
        }
    }

    /// <summary>Every output merged, and the file not yet past <see cref="FileStates.Reconstructed"/>: it moves to Merged now.</summary>
    public static bool AllMergedNow(FileState saga) =>
        saga.CurrentState == FileStates.Reconstructed && saga.Outputs.All(o => o.MergedName is not null);

    public void AddLogs(FileState saga, IReadOnlyList<string> logNames)
    {
        saga.LogNames.AddRange(logNames.Except(saga.LogNames));
        saga.UpdatedAt = time.GetUtcNow();
    }

    /// <summary>Waiting for a reconstruction slot is not a stall: the dispatcher decides when, and nothing is lost meanwhile.</summary>
    public static void WaitForSlot(FileState saga) => saga.Deadline = null;

    /// <summary>A final file has nothing left to do: the watchdog never looks at it.</summary>
    public static void Finish(FileState saga) => saga.Deadline = null;

    public void WaitForCalibration(FileState saga) => saga.Deadline = deadlines.CalibrationCheck(time.GetUtcNow());

    /// <summary>
    /// True if the file's campaign is paused: the step is not issued, the file is marked held and due at once, so that
    /// the watchdog (which leaves paused campaigns alone) issues it as soon as the campaign resumes.
    /// </summary>
    public bool Held<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (!Facts(context).CampaignPaused)
        {
            return false;
        }
        context.Saga.Held = true;
        context.Saga.Deadline = time.GetUtcNow();
        context.Saga.Because = $"held: campaign {context.Saga.Campaign} is paused";
        return true;
    }

    /// <summary>A new attempt's stage-in.</summary>
    public async Task IssueStaging<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (Held(context))
        {
            return;
        }
        // The copy an earlier attempt staged (bad, or read by a failed job) is not read again: each attempt stages its own.
        await DiscardCachedCopy(context);
        AttemptPolicy.StartAttempt(context.Saga);
        context.Saga.CachedName = null;
        context.Saga.Deadline = deadlines.Staging(time.GetUtcNow());
        await context.PublishBoundedAsync(FileMessages.Stage(context.Saga));
    }

    /// <summary>
    /// A stalled stage-in asked for again under the same attempt, so that whichever request finishes first moves the file
    /// on (see <see cref="FileDeadlines.StagingAskedAgain"/>). A file held before its first request gets its first.
    /// </summary>
    public Task AskForStagingAgain(BehaviorContext<FileState, FileStalled> context)
    {
        if (context.Saga.Attempt == 0)
        {
            return IssueStaging(context);
        }
        if (Held(context))
        {
            return Task.CompletedTask;
        }
        context.Saga.Deadline = deadlines.StagingAskedAgain(context.Saga, time.GetUtcNow());
        return context.PublishBoundedAsync(FileMessages.Stage(context.Saga));
    }

    /// <summary>A new attempt's reconstruction request.</summary>
    public Task IssueReconstruction<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (Held(context))
        {
            return Task.CompletedTask;
        }
        AttemptPolicy.StartAttempt(context.Saga);
        return PublishReconstruction(context);
    }

    /// <summary>The current attempt's reconstruction request, with its campaign's time limit as it stands now.</summary>
    public Task PublishReconstruction<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        if (Held(context))
        {
            return Task.CompletedTask;
        }
        context.Saga.Deadline = deadlines.Queued(time.GetUtcNow());
        return context.PublishBoundedAsync(FileMessages.Reconstruct(context.Saga, Facts(context).TimeLimitSeconds));
    }

    /// <summary>Every output not yet archived, to the merger.</summary>
    public async Task IssueMerges<T>(BehaviorContext<FileState, T> context)
        where T : class
    {
        context.Saga.Deadline = deadlines.Merge(time.GetUtcNow());
        foreach (var tracked in context.Saga.Outputs.Where(o => !o.Archived))
        {
            await context.PublishBoundedAsync(FileMessages.Merge(context.Saga, tracked));
        }
    }

    /// <summary>Asks the stager to delete the file's staged copy, if it has one (a copy already gone only gives its room back).</summary>
    public static Task DiscardCachedCopy<T>(BehaviorContext<FileState, T> context)
        where T : class =>
        context.Saga.CachedName is { } cached ? context.PublishBoundedAsync(FileMessages.Discard(context.Saga, cached)) : Task.CompletedTask;
}

/// <summary>How the state machine says why an event changes a file (<see cref="FileHistory"/> writes it down).</summary>
internal static class FileNarration
{
    public static EventActivityBinder<FileState, T> Because<T>(this EventActivityBinder<FileState, T> binder, Func<BehaviorContext<FileState, T>, string> because)
        where T : class => binder.Then(c => c.Saga.Because = because(c));
}
