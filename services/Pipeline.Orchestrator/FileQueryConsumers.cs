using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>Answers another stage's question about files' states from the sagas, which only this service reads.</summary>
public sealed class FileStatesQueryConsumer(IFileSagaStore sagas) : IConsumer<FileStatesQuery>
{
    public async Task Consume(ConsumeContext<FileStatesQuery> context)
    {
        var ids = context.Message.FileIds;
        if (ids.Count > FileStatesQuery.MaxFiles)
        {
            // Refused to the error queue with the reason; the caller's request times out and it asks again in parts.
            throw new ArgumentException($"A file states query names {ids.Count} files; at most {FileStatesQuery.MaxFiles} may be asked at once.");
        }
        var known = new List<FileStatus>(ids.Count);
        foreach (var id in ids.Distinct())
        {
            if (await sagas.LoadAsync(id, context.CancellationToken) is { } saga)
            {
                known.Add(new FileStatus(id, saga.Campaign, saga.Run, saga.Stream, saga.CurrentState, FileStates.Final.Contains(saga.CurrentState), saga.Attempt));
            }
        }
        await AnswerAsync(context, new FileStatesAnswer(known));
    }

    /// <summary>
    /// Every asker gives up within 30 s, so an answer is not worth waiting for longer than that: an answer whose
    /// sending hangs (its asker's reply queue went with a broker restart) is given up, so that it does not hold one
    /// of this queue's consumers for ever and leave later questions unanswered.
    /// </summary>
    internal static async Task AnswerAsync<TAnswer>(ConsumeContext context, TAnswer answer)
        where TAnswer : class
    {
        try
        {
            await context.RespondBoundedAsync(answer);
        }
        catch (TimeoutException)
        {
            // The asker has timed out and will ask again.
        }
    }
}

/// <summary>Answers the monitor's stuck-file check from the sagas (see <see cref="OverdueFilesQuery"/>).</summary>
public sealed class OverdueFilesQueryConsumer(IFileSagaStore sagas) : IConsumer<OverdueFilesQuery>
{
    public const int MaxFiles = 1000;

    public async Task Consume(ConsumeContext<OverdueFilesQuery> context)
    {
        var limit = Math.Clamp(context.Message.Limit, 1, MaxFiles);
        var overdue = await sagas.FindStalledAsync(context.Message.DeadlineBefore, null, limit, context.CancellationToken);
        await FileStatesQueryConsumer.AnswerAsync(context, new OverdueFilesAnswer(overdue.Select(file => new OverdueFile(file.Id, file.Campaign, file.Run, file.State)).ToList()));
    }
}

// A question is retried briefly (its asker waits 10 to 30 s) and answered as soon as it is consumed: no outbox.
public sealed class FileStatesQueryConsumerDefinition() : QueueConsumerDefinition<FileStatesQueryConsumer>(QueueName, [100, 500, 2000], outbox: false)
{
    public const string QueueName = "file-states-query";
}

public sealed class OverdueFilesQueryConsumerDefinition() : QueueConsumerDefinition<OverdueFilesQueryConsumer>(QueueName, [100, 500, 2000], outbox: false)
{
    public const string QueueName = "overdue-files-query";
}
