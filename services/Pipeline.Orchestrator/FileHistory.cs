using MassTransit;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Writes a file's history as its state machine runs: a line for every state it enters, and one when an event
/// changed it without a new state (a retry, a hold, a second claim), each with the reason the machine gave
/// (<see cref="FileState.Because"/>), or for a failed file its failure. The machine itself only says why.
/// </summary>
public sealed class FileHistory(TimeProvider time) : IStateObserver<FileState>, IEventObserver<FileState>
{
    public Task StateChanged(BehaviorContext<FileState> context, State currentState, State previousState)
    {
        Write(context.Saga, currentState.Name, context.Event.Name);
        return Task.CompletedTask;
    }

    public Task PostExecute<T>(BehaviorContext<FileState, T> context)
        where T : class => AfterEvent(context);

    public Task PostExecute(BehaviorContext<FileState> context) => AfterEvent(context);

    public Task PreExecute<T>(BehaviorContext<FileState, T> context)
        where T : class => BeforeEvent(context);

    public Task PreExecute(BehaviorContext<FileState> context) => BeforeEvent(context);

    public Task ExecuteFault(BehaviorContext<FileState> context, Exception exception) => Task.CompletedTask;

    public Task ExecuteFault<T>(BehaviorContext<FileState, T> context, Exception exception)
        where T : class => Task.CompletedTask;

    private static Task BeforeEvent(BehaviorContext<FileState> context)
    {
        // Whatever was said while handling an earlier delivery that failed must not leak into this one.
        context.Saga.Because = null;
        return Task.CompletedTask;
    }

    private Task AfterEvent(BehaviorContext<FileState> context)
    {
        var saga = context.Saga;
        // A new attempt in the same state (a step issued again) is worth a line even if nobody said why.
        if (saga.Because is not null || (saga.History.Count > 0 && saga.History[^1].Attempt != saga.Attempt))
        {
            Write(saga, saga.CurrentState, context.Event.Name);
        }
        return Task.CompletedTask;
    }

    private void Write(FileState saga, string state, string @event)
    {
        var now = time.GetUtcNow();
        saga.UpdatedAt = now;
        var because = saga.Because ?? (state == FileStates.Failed ? saga.FailureReason : null);
        saga.Record(now, state, @event, because);
        FileTracing.Outcome(because is null ? state : $"{state}: {because}");
        saga.Because = null;
    }
}
