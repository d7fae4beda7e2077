using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Tells the merger when a file starts or stops being able to produce outputs (<see cref="RunFileProgress"/>): on
/// its registration and on a retry it is open; once reconstructed, failed or cancelled it is closed, with its
/// outputs counted per dataset. The history line each transition adds orders the reports of one file.
/// </summary>
public sealed class RunFileReporter : IStateObserver<FileState>
{
    public Task StateChanged(BehaviorContext<FileState> context, State currentState, State previousState)
    {
        var open = IsOpen(currentState.Name);
        if (open == IsOpen(previousState.Name))
        {
            return Task.CompletedTask;
        }
        var saga = context.Saga;
        IReadOnlyList<DatasetOutputs> outputs = open
            ? []
            : [.. saga.Outputs.GroupBy(o => o.Output.Dataset, StringComparer.Ordinal).Select(g => new DatasetOutputs(g.Key, g.Count()))];
        return context.Publish(new RunFileProgress(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.History.Count, open, outputs));
    }

    private static bool IsOpen(string state) => FileStates.BeforeReconstructed.Contains(state);
}
