using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Tells the merger when a file starts or stops being able to produce outputs (<see cref="RunFileProgress"/>): on
/// its registration and on a retry it is open; once reconstructed, failed or cancelled it is closed, with its
/// outputs counted per dataset. The file's history, which grows with every transition, numbers the reports.
/// </summary>
public sealed class RunFileReporter : IStateObserver<FileState>
{
    public Task StateChanged(BehaviorContext<FileState> context, State currentState, State previousState) =>
        IsOpen(currentState.Name) == IsOpen(previousState.Name) ? Task.CompletedTask : context.PublishBoundedAsync(Report(context.Saga));

    /// <summary>What the file is now, as the merger's ledger keeps it.</summary>
    public static RunFileProgress Report(FileState saga)
    {
        var open = IsOpen(saga.CurrentState);
        IReadOnlyList<DatasetOutputs> outputs = open
            ? []
            : [.. saga.Outputs.GroupBy(o => o.Output.Dataset, StringComparer.Ordinal).Select(g => new DatasetOutputs(g.Key, g.Count()))];
        return new RunFileProgress(saga.CorrelationId, saga.Run, saga.Stream, saga.Campaign, saga.History.Count, open, outputs);
    }

    private static bool IsOpen(string state) => FileStates.BeforeReconstructed.Contains(state);
}

/// <summary>Every file of a run reports again, read from its saga (see <see cref="ResendRunFileProgress"/>).</summary>
public sealed class ResendRunFileProgressConsumer(IFileSagaStore sagas, ILogger<ResendRunFileProgressConsumer> logger) : IConsumer<ResendRunFileProgress>
{
    public async Task Consume(ConsumeContext<ResendRunFileProgress> context)
    {
        var (campaign, run) = (context.Message.Campaign, context.Message.Run);
        var sent = 0;
        string? after = null;
        do
        {
            var page = await sagas.ListAsync(new FileQuery(Campaign: campaign, RunFrom: run, RunTo: run, After: after, Limit: 500), context.CancellationToken);
            foreach (var file in page.Files)
            {
                if (await sagas.LoadAsync(file.Id, context.CancellationToken) is { } saga)
                {
                    await context.PublishBoundedAsync(RunFileReporter.Report(saga), context.CancellationToken);
                    sent++;
                }
            }
            after = page.Next;
        }
        while (after is not null);
        logger.LogInformation("Run {Run} of {Campaign}: {Files} files reported their state to the merger again, as it asked", run, campaign, sent);
    }
}

public sealed class ResendRunFileProgressConsumerDefinition() : QueueConsumerDefinition<ResendRunFileProgressConsumer>(QueueName, [100, 500, 2000, 10000])
{
    public const string QueueName = "resend-run-file-progress";
}
