using System.Collections.Concurrent;
using System.Reflection;
using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Bson.Serialization.Serializers;
using MongoDB.Driver;

namespace Pipeline.Production.State;

/// <summary>
/// A concern's store over the embedded SQLite database: made from the process's <see cref="SqliteDatabase"/>, it
/// creates its own tables and indexes when made.
/// </summary>
public interface ISqliteStore;

/// <summary>
/// A concern's store over PostgreSQL: made from the process's <see cref="PostgresDatabase"/>, it brings its own tables
/// and indexes to their latest version when made (<see cref="PostgresDatabase.Migrate"/>).
/// </summary>
public interface IPostgresStore;

/// <summary>
/// A concern's store over MongoDB: made from the shared <see cref="MongoStoreContext"/>, it names the collections it
/// keeps with their indexes, which every instance creates at start-up (a collection created implicitly inside a
/// transaction fails under concurrency, and the unique indexes are part of correctness).
/// </summary>
public interface IMongoStore
{
    static abstract IReadOnlyList<MongoCollection> Schema { get; }

    /// <summary>
    /// Maps the concern's records (their natural ids, say) for the driver. Called once for every concern by
    /// <see cref="MongoMapping.Register"/>, before any record is read or written: a record the driver met before its
    /// map was registered would keep the default map for good.
    /// </summary>
    static virtual void MapRecords()
    {
    }

    /// <summary>What the concern prepares once its collections and indexes exist (a one-time count, say).</summary>
    static virtual Task PrepareAsync(MongoStoreContext database, CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>One collection of a concern, with its indexes and those of earlier versions to drop.</summary>
public sealed record MongoCollection(string Name, IReadOnlyList<CreateIndexModel<BsonDocument>> Indexes, IReadOnlyList<string>? ObsoleteIndexes = null)
{
    public MongoCollection(string name) : this(name, []) { }

    /// <summary>An ascending index on the fields in order.</summary>
    public static CreateIndexModel<BsonDocument> Index(string name, params string[] fields) => new(Keys(fields), new CreateIndexOptions { Name = name });

    public static CreateIndexModel<BsonDocument> UniqueIndex(string name, params string[] fields) => new(Keys(fields), new CreateIndexOptions { Name = name, Unique = true });

    public static IndexKeysDefinition<BsonDocument> Keys(params string[] fields) =>
        Builders<BsonDocument>.IndexKeys.Combine(fields.Select(f => Builders<BsonDocument>.IndexKeys.Ascending(f)));

    /// <summary>The fields of one of this collection's indexes, in order (for tests that check a query has its index).</summary>
    public string[] FieldsOf(string index) =>
        [.. Indexes.Single(i => i.Options.Name == index)
            .Keys.Render(new RenderArgs<BsonDocument>(BsonDocumentSerializer.Instance, BsonSerializer.SerializerRegistry)).Names];
}

/// <summary>
/// The concerns of the state store, found by what their classes implement: each concern's folder holds its interface
/// and one class per backend, so that adding a concern adds a folder and touches nothing here, and adding a backend
/// adds one class per concern plus its connection code.
/// </summary>
public static class StoreConcerns
{
    private static readonly ConcurrentDictionary<(Type Store, Type Backend), Type> Implementations = new();

    /// <summary>The class that serves <paramref name="store"/> on the backend whose stores implement <paramref name="backend"/>.</summary>
    public static Type ImplementationOf(Type store, Type backend) =>
        Implementations.GetOrAdd((store, backend), key =>
        {
            var found = key.Store.Assembly.GetTypes()
                .Where(t => t is { IsClass: true, IsAbstract: false } && key.Store.IsAssignableFrom(t) && key.Backend.IsAssignableFrom(t))
                .ToList();
            return found.Count == 1
                ? found[0]
                : throw new ArgumentException(found.Count == 0
                    ? $"No {key.Backend.Name} serves {key.Store.Name}."
                    : $"Several classes serve {key.Store.Name} as {key.Backend.Name}: {string.Join(", ", found.Select(t => t.Name))}.", nameof(store));
        });

    /// <summary>The markers of the backends' store classes.</summary>
    public static IReadOnlyList<Type> Backends { get; } = [typeof(ISqliteStore), typeof(IPostgresStore), typeof(IMongoStore)];

    /// <summary>Every concern's interface: what a store class implements besides its backend's marker.</summary>
    public static IReadOnlyList<Type> All { get; } =
    [
        .. Backends.SelectMany(BackendClasses)
            .SelectMany(t => t.GetInterfaces())
            .Where(i => !Backends.Contains(i) && i.Namespace == typeof(StoreConcerns).Namespace)
            .Distinct()
            .OrderBy(i => i.Name, StringComparer.Ordinal),
    ];

    /// <summary>The classes of one backend, in this assembly.</summary>
    public static IReadOnlyList<Type> BackendClasses(Type backend) =>
        [.. typeof(StoreConcerns).Assembly.GetTypes().Where(t => t is { IsClass: true, IsAbstract: false } && backend.IsAssignableFrom(t)).OrderBy(t => t.Name, StringComparer.Ordinal)];

    /// <summary>Every collection of every MongoDB concern.</summary>
    public static IReadOnlyList<MongoCollection> MongoSchema { get; } =
        [.. BackendClasses(typeof(IMongoStore)).SelectMany(t => (IReadOnlyList<MongoCollection>)Generic(nameof(SchemaOf), t).Invoke(null, null)!)];

    /// <summary>One collection of the MongoDB schema, by name.</summary>
    public static MongoCollection MongoCollectionNamed(string name) => MongoSchema.Single(c => c.Name == name);

    /// <summary>Maps every MongoDB concern's records (see <see cref="IMongoStore.MapRecords"/>).</summary>
    public static void MapMongoRecords()
    {
        foreach (var type in BackendClasses(typeof(IMongoStore)))
        {
            Generic(nameof(MapRecordsOf), type).Invoke(null, null);
        }
    }

    /// <summary>Runs every MongoDB concern's own preparation.</summary>
    public static async Task PrepareMongoAsync(MongoStoreContext database, CancellationToken cancellationToken)
    {
        foreach (var type in BackendClasses(typeof(IMongoStore)))
        {
            await (Task)Generic(nameof(PrepareOf), type).Invoke(null, [database, cancellationToken])!;
        }
    }

    private static MethodInfo Generic(string name, Type type) =>
        typeof(StoreConcerns).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)!.MakeGenericMethod(type);

    private static IReadOnlyList<MongoCollection> SchemaOf<T>() where T : IMongoStore => T.Schema;

    private static void MapRecordsOf<T>() where T : IMongoStore => T.MapRecords();

    private static Task PrepareOf<T>(MongoStoreContext database, CancellationToken cancellationToken) where T : IMongoStore =>
        T.PrepareAsync(database, cancellationToken);
}
