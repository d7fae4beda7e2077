using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State.Mongo;
using Pipeline.Production.State.Sqlite;

namespace Pipeline.Production.State;

/// <summary>
/// The configured database and the stores over it, one per concern: each store is made the first time a process
/// asks for it, so a process that never merges never touches the merge tables. SQLite: one file shared by every
/// store of the process. MongoDB: one database.
/// </summary>
public sealed class StoreBackend : IDisposable
{
    private readonly SqliteDatabase? _sqlite;
    private readonly MongoStoreContext? _mongo;
    private readonly ConcurrentDictionary<Type, object> _stores = new();

    private StoreBackend(SqliteDatabase? sqlite, MongoStoreContext? mongo)
    {
        _sqlite = sqlite;
        _mongo = mongo;
    }

    public static StoreBackend Sqlite(string path, SqliteDurability durability = SqliteDurability.Full) => new(new SqliteDatabase(path, durability), null);

    public static StoreBackend Mongo(MongoStoreContext context) => new(null, context);

    /// <summary>The backend the options name (for a tool that reads the store without running a stage).</summary>
    public static StoreBackend Open(PipelineOptions options) => options.Store switch
    {
        StoreKind.Mongo => Mongo(new MongoStoreContext(MongoStoreContext.CreateClient(options.Mongo.ConnectionString, TimeSpan.FromSeconds(options.Mongo.WriteTimeoutSeconds)), options.Mongo.Database)),
        _ => Sqlite(options.SqlitePath, options.Sqlite.Durability),
    };

    /// <summary>The MongoDB database, when that is the backend (for index creation at start-up and for tests).</summary>
    public MongoStoreContext? MongoContext => _mongo;

    public IFileSagaStore Sagas => Get<IFileSagaStore>();
    public IRunRegistry Runs => Get<IRunRegistry>();
    public ICatalog Catalog => Get<ICatalog>();
    public IMergeStore Merges => Get<IMergeStore>();
    public IRunLedger RunLedger => Get<IRunLedger>();
    public IFlowStore Flow => Get<IFlowStore>();
    public ICampaignStore Campaigns => Get<ICampaignStore>();
    public IHealthStore Health => Get<IHealthStore>();
    public IActivityLog Activity => Get<IActivityLog>();
    public IControlStore Control => Get<IControlStore>();
    public IRunTimeStore RunTimes => Get<IRunTimeStore>();
    public ISingletonLeaseStore SingletonLeases => Get<ISingletonLeaseStore>();

    /// <summary>The store of one concern, made on first use and shared after that.</summary>
    public TStore Get<TStore>() where TStore : class => (TStore)_stores.GetOrAdd(typeof(TStore), _ => Create(typeof(TStore)));

    private object Create(Type store)
    {
        // Runs and catalog are one store: a run is registered with its raw files in one transaction.
        if (store == typeof(IRunRegistry) || store == typeof(ICatalog))
        {
            return _stores.GetOrAdd(typeof(RunCatalogKey), _ => _sqlite is not null ? new SqliteRunCatalog(_sqlite) : new MongoRunCatalog(_mongo!));
        }
        return _sqlite is { } sqlite
            ? (SqliteStores.TryGetValue(store, out var sqliteStore) ? sqliteStore(sqlite) : throw NoStore(store))
            : (MongoStores.TryGetValue(store, out var mongoStore) ? mongoStore(_mongo!) : throw NoStore(store));
    }

    private static ArgumentException NoStore(Type store) => new($"No store serves {store.Name}.", nameof(store));

    private static readonly Dictionary<Type, Func<SqliteDatabase, object>> SqliteStores = new()
    {
        [typeof(IFileSagaStore)] = db => new SqliteFileSagaStore(db),
        [typeof(IMergeStore)] = db => new SqliteMergeStore(db),
        [typeof(IRunLedger)] = db => new SqliteRunLedger(db),
        [typeof(IFlowStore)] = db => new SqliteFlowStore(db),
        [typeof(ICampaignStore)] = db => new SqliteCampaignStore(db),
        [typeof(IHealthStore)] = db => new SqliteHealthStore(db),
        [typeof(IActivityLog)] = db => new SqliteActivityLog(db),
        [typeof(IControlStore)] = db => new SqliteControlStore(db),
        [typeof(IRunTimeStore)] = db => new SqliteRunTimeStore(db),
        [typeof(ISingletonLeaseStore)] = db => new SqliteSingletonLeaseStore(db),
    };

    private static readonly Dictionary<Type, Func<MongoStoreContext, object>> MongoStores = new()
    {
        [typeof(IFileSagaStore)] = db => new MongoFileSagaStore(db),
        [typeof(IMergeStore)] = db => new MongoMergeStore(db),
        [typeof(IRunLedger)] = db => new MongoRunLedger(db),
        [typeof(IFlowStore)] = db => new MongoFlowStore(db),
        [typeof(ICampaignStore)] = db => new MongoCampaignStore(db),
        [typeof(IHealthStore)] = db => new MongoHealthStore(db),
        [typeof(IActivityLog)] = db => new MongoActivityLog(db),
        [typeof(IControlStore)] = db => new MongoControlStore(db),
        [typeof(IRunTimeStore)] = db => new MongoRunTimeStore(db),
        [typeof(ISingletonLeaseStore)] = db => new MongoSingletonLeaseStore(db),
    };

    /// <summary>Answers when the database does: for the readiness check.</summary>
    public Task PingAsync(CancellationToken cancellationToken) =>
        _mongo is not null ? _mongo.PingAsync(cancellationToken) : _sqlite!.ReadAsync(session => session.Scalar("SELECT 1"));

    public void Dispose() => _sqlite?.Dispose();

    private sealed class RunCatalogKey;
}

public static class StoreRegistration
{
    /// <summary>Registers one store that a service uses, served by the configured backend.</summary>
    public static IServiceCollection AddStore<TStore>(this IServiceCollection services) where TStore : class
    {
        services.TryAddSingleton(sp => sp.GetRequiredService<StoreBackend>().Get<TStore>());
        return services;
    }
}
