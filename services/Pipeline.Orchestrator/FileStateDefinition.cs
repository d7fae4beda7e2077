using MassTransit;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// The file sagas' endpoint: retries lost compare-and-set races, sends nothing before the saga is saved, and hands the
/// state machine the facts it needs (<see cref="FileFacts"/>).
/// </summary>
public sealed class FileStateDefinition : SagaDefinition<FileState>
{
    public const string QueueName = "orchestrator";

    public FileStateDefinition()
    {
        EndpointName = QueueName;
    }

    protected override void ConfigureSaga(IReceiveEndpointConfigurator endpointConfigurator, ISagaConfigurator<FileState> sagaConfigurator, IRegistrationContext context)
    {
        // A lost optimistic-concurrency race re-reads the saga and applies the message again.
        endpointConfigurator.UseMessageRetry(r => r.Intervals(10, 20, 50, 100, 200, 500, 1000, 2000, 5000));
        // Messages the saga publishes go out only after its new state is stored.
        endpointConfigurator.UseInMemoryOutbox(context);
        // What the machine must know of the world (a paused campaign, a deposed dispatcher, the campaign's time limit)
        // travels with each message into it.
        endpointConfigurator.UseConsumeFilter(typeof(FileFactsFilter<>), context);
    }
}
