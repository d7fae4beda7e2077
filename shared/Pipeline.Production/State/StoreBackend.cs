using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pipeline.Infrastructure.Hosting;

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
    private readonly ConcurrentDictionary<Type, object> _implementations = new();

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

    /// <summary>
    /// The store of one concern, made on first use and shared after that: the class of the concern's folder that serves
    /// this backend (<see cref="StoreConcerns"/>). A class serving several interfaces (runs and catalog, registered in one
    /// transaction) is made once for all of them.
    /// </summary>
    public TStore Get<TStore>() where TStore : class => (TStore)_stores.GetOrAdd(typeof(TStore), store =>
    {
        var implementation = StoreConcerns.ImplementationOf(store, _sqlite is not null ? typeof(ISqliteStore) : typeof(IMongoStore));
        return _implementations.GetOrAdd(implementation, type => Activator.CreateInstance(type, _sqlite ?? (object)_mongo!)!);
    });

    /// <summary>Answers when the database does: for the readiness check.</summary>
    public Task PingAsync(CancellationToken cancellationToken) =>
        _mongo is not null ? _mongo.PingAsync(cancellationToken) : _sqlite!.ReadAsync(session => session.Scalar("SELECT 1"));

    public void Dispose() => _sqlite?.Dispose();
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
