using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Production.State;

/// <summary>
/// The configured database and the stores over it, one per concern: each store is made the first time a process
/// asks for it, so a process that never merges never touches the merge tables. SQLite: one file shared by every
/// store of the process. PostgreSQL and MongoDB: one database on a server every process shares.
/// </summary>
public sealed class StoreBackend : IDisposable
{
    private readonly SqliteDatabase? _sqlite;
    private readonly PostgresDatabase? _postgres;
    private readonly MongoStoreContext? _mongo;
    private readonly ConcurrentDictionary<Type, object> _stores = new();
    private readonly ConcurrentDictionary<Type, object> _implementations = new();

    private StoreBackend(SqliteDatabase? sqlite, PostgresDatabase? postgres, MongoStoreContext? mongo)
    {
        _sqlite = sqlite;
        _postgres = postgres;
        _mongo = mongo;
    }

    public static StoreBackend Sqlite(string path, SqliteDurability durability = SqliteDurability.Full) => new(new SqliteDatabase(path, durability), null, null);

    public static StoreBackend Postgres(PostgresDatabase database) => new(null, database, null);

    public static StoreBackend Mongo(MongoStoreContext context) => new(null, null, context);

    /// <summary>The backend the options name (for a tool that reads the store without running a stage).</summary>
    public static StoreBackend Open(PipelineOptions options) => options.Store switch
    {
        StoreKind.Postgres => Postgres(PostgresConnection.Open(options.Postgres)),
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
        var (marker, database) = _sqlite is not null ? (typeof(ISqliteStore), (object)_sqlite)
            : _postgres is not null ? (typeof(IPostgresStore), _postgres)
            : (typeof(IMongoStore), _mongo!);
        var implementation = StoreConcerns.ImplementationOf(store, marker);
        return _implementations.GetOrAdd(implementation, type => Activator.CreateInstance(type, database)!);
    });

    /// <summary>
    /// Makes the store of every concern now, so that each brings its tables to their version (PostgreSQL) before the
    /// first message is consumed, rather than on first use.
    /// </summary>
    public void PrepareEveryConcern()
    {
        var get = typeof(StoreBackend).GetMethod(nameof(Get))!;
        foreach (var concern in StoreConcerns.All)
        {
            try
            {
                get.MakeGenericMethod(concern).Invoke(this, null);
            }
            catch (System.Reflection.TargetInvocationException ex) when (ex.InnerException is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(ex.InnerException);
            }
        }
    }

    /// <summary>Answers when the database does: for the readiness check.</summary>
    public Task PingAsync(CancellationToken cancellationToken) =>
        _mongo is not null ? _mongo.PingAsync(cancellationToken)
        : _postgres is not null ? _postgres.PingAsync(cancellationToken)
        : _sqlite!.ReadAsync(session => session.Scalar("SELECT 1"));

    /// <summary>The PostgreSQL server, when that is the backend (for tests and tools).</summary>
    public PostgresDatabase? PostgresDatabase => _postgres;

    public void Dispose()
    {
        _sqlite?.Dispose();
        _postgres?.Dispose();
    }
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
