using MassTransit;
using MassTransit.Configuration;
using MassTransit.Context;
using MassTransit.Middleware;
using MassTransit.Saga;
using Pipeline.Infrastructure.Faults;
using Pipeline.Production.State;

namespace Pipeline.Orchestrator;

/// <summary>
/// Plugs the project's own <see cref="IFileSagaStore"/> (SQLite now, MongoDB later) under MassTransit's
/// saga repository. Sagas are found by correlation id only; no query correlation is offered, so
/// every message that reaches a file saga names its file.
/// </summary>
public sealed class StoreSagaRepositoryContextFactory(
    IFileSagaStore store,
    ISagaConsumeContextFactory<IFileSagaStore, FileState> factory,
    ILogger<StoreSagaRepositoryContextFactory> logger)
    : ISagaRepositoryContextFactory<FileState>, ILoadSagaRepositoryContextFactory<FileState>
{
    public void Probe(ProbeContext context) => context.Add("persistence", store.GetType().Name);

    public Task Send<T>(ConsumeContext<T> context, IPipe<SagaRepositoryContext<FileState, T>> next)
        where T : class =>
        next.Send(new StoreSagaRepositoryContext<T>(store, context, factory, logger));

    public Task SendQuery<T>(ConsumeContext<T> context, ISagaQuery<FileState> query, IPipe<SagaRepositoryQueryContext<FileState, T>> next)
        where T : class =>
        throw new NotSupportedException("File sagas are correlated by id; query correlation is not offered by this store.");

    public async Task<T> Execute<T>(Func<LoadSagaRepositoryContext<FileState>, Task<T>> asyncMethod, CancellationToken cancellationToken = default)
        where T : class =>
        await asyncMethod(new StoreLoadContext(store, cancellationToken));

    private sealed class StoreLoadContext(IFileSagaStore store, CancellationToken cancellationToken)
        : BasePipeContext(cancellationToken), LoadSagaRepositoryContext<FileState>
    {
        public Task<FileState> Load(Guid correlationId) => store.LoadAsync(correlationId, CancellationToken)!;
    }
}

/// <summary>One message's view of the store: load, insert, compare-and-set update.</summary>
public sealed class StoreSagaRepositoryContext<TMessage> : ConsumeContextScope<TMessage>, SagaRepositoryContext<FileState, TMessage>
    where TMessage : class
{
    private readonly IFileSagaStore store;
    private readonly ConsumeContext<TMessage> consumeContext;
    private readonly ISagaConsumeContextFactory<IFileSagaStore, FileState> factory;
    private readonly ILogger logger;

    public StoreSagaRepositoryContext(IFileSagaStore store, ConsumeContext<TMessage> consumeContext, ISagaConsumeContextFactory<IFileSagaStore, FileState> factory, ILogger logger)
        : base(consumeContext)
    {
        this.store = store;
        this.consumeContext = consumeContext;
        this.factory = factory;
        this.logger = logger;
    }

    // The version each saga had when this message loaded it: the compare in compare-and-set.
    private readonly Dictionary<Guid, int> _loadedVersions = [];

    public Task<SagaConsumeContext<FileState, T>> CreateSagaConsumeContext<T>(ConsumeContext<T> context, FileState instance, SagaConsumeContextMode mode)
        where T : class =>
        factory.CreateSagaConsumeContext(store, context, instance, mode);

    public Task<SagaConsumeContext<FileState, TMessage>> Add(FileState instance) =>
        factory.CreateSagaConsumeContext(store, consumeContext, instance, SagaConsumeContextMode.Add);

    public async Task<SagaConsumeContext<FileState, TMessage>> Insert(FileState instance)
    {
        try
        {
            await store.InsertAsync(instance, CancellationToken);
            _loadedVersions[instance.CorrelationId] = instance.Version;
            return await factory.CreateSagaConsumeContext(store, consumeContext, instance, SagaConsumeContextMode.Insert);
        }
        catch (ConcurrencyConflictException)
        {
            // Someone else created it first; MassTransit then loads the existing one.
            return default!;
        }
    }

    public async Task<SagaConsumeContext<FileState, TMessage>> Load(Guid correlationId)
    {
        var instance = await store.LoadAsync(correlationId, CancellationToken);
        if (instance is null)
        {
            return default!;
        }
        _loadedVersions[correlationId] = instance.Version;
        return await factory.CreateSagaConsumeContext(store, consumeContext, instance, SagaConsumeContextMode.Load);
    }

    public Task Save(SagaConsumeContext<FileState> context) => store.InsertAsync(context.Saga, CancellationToken);

    public async Task Update(SagaConsumeContext<FileState> context)
    {
        var expected = _loadedVersions.TryGetValue(context.Saga.CorrelationId, out var loaded) ? loaded : context.Saga.Version;
        try
        {
            await store.UpdateAsync(context.Saga, expected, CancellationToken);
        }
        catch (ConcurrencyConflictException)
        {
            // An expected race: another message about the same file was saved first. The retry handles this one
            // again on the fresh state, so one brief line at debug says so; the retry's own warning is filtered
            // out of the logs (PipelineHosting), and only a retry that gives up is logged with its stack.
            logger.LogDebug("File {FileId} changed since version {Version} was read: {MessageType} is handled again on the new state",
                context.Saga.CorrelationId, expected, typeof(TMessage).Name);
            throw;
        }
        FaultInjection.SagaSaved();
    }

    public Task Delete(SagaConsumeContext<FileState> context) =>
        throw new NotSupportedException("File sagas are kept as the record of production; they are never deleted.");

    public Task Discard(SagaConsumeContext<FileState> context) => Task.CompletedTask;

    public Task Undo(SagaConsumeContext<FileState> context) => Task.CompletedTask;
}

public static class StoreSagaRepositoryRegistration
{
    /// <summary>Persists the file sagas in the configured <see cref="IFileSagaStore"/>.</summary>
    public static ISagaRegistrationConfigurator<FileState> StoreRepository(this ISagaRegistrationConfigurator<FileState> configurator)
    {
        configurator.Repository(repository =>
        {
            repository.RegisterLoadSagaRepository<FileState, StoreSagaRepositoryContextFactory>();
            repository.RegisterSagaRepository<FileState, IFileSagaStore, SagaConsumeContextFactory<IFileSagaStore, FileState>, StoreSagaRepositoryContextFactory>();
        });
        return configurator;
    }
}
