using System.Text.Json;
using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>
/// Runs as announced and the catalog of every copy, in MongoDB: registering a run with its raw files is one
/// transaction, so either all of it is stored or none.
/// </summary>
public sealed class MongoRunCatalog(MongoStoreContext db) : IRunRegistry, ICatalog, IMongoStore
{
    public const string RunsCollection = "runs";
    public const string CatalogCollection = "catalog";
    public const string AnnouncementsCollection = "run_announcements";

    /// <summary>The concern's records with their natural ids (see <see cref="IMongoStore.MapRecords"/>).</summary>
    public static void MapRecords()
    {
        BsonClassMap.TryRegisterClassMap<RunDocument>(map =>
        {
            map.AutoMap();
            map.MapIdMember(x => x.Run);
        });
    }

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(RunsCollection),
        new(CatalogCollection,
        [
            MongoCollection.UniqueIndex("name_area", Fields.Name, Fields.Area),
            MongoCollection.Index("kind_campaign_dataset_name", Fields.Kind, Fields.Campaign, Fields.Dataset, Fields.Name),
            // Every campaign's files of a kind, in (dataset, name) order: without a campaign, the index above cannot give that order.
            MongoCollection.Index("kind_dataset_name", Fields.Kind, Fields.Dataset, Fields.Name),
        ]),
        new(AnnouncementsCollection, [MongoCollection.Index("run_part", Fields.Run, "part")]),
    ];

    private readonly IMongoCollection<RunDocument> _runs = db.Collection<RunDocument>(RunsCollection);
    private readonly IMongoCollection<CatalogEntry> _catalog = db.Collection<CatalogEntry>(CatalogCollection);
    private readonly IMongoCollection<BsonDocument> _announcements = db.Collection<BsonDocument>(AnnouncementsCollection);

    public async Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        try
        {
            // The body only reads, then inserts: WithTransactionAsync runs it again after a transient error or a
            // write conflict with a concurrent registration, and the second time it finds what the other stored.
            return await session.WithTransactionAsync(async (s, token) =>
            {
                var known = await _runs.Find(s, r => r.Run == run).FirstOrDefaultAsync(token);
                if (known is not null)
                {
                    return known.Digest == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
                }
                // A write error such as a duplicate key aborts a MongoDB transaction, so catalogued files are
                // looked up first instead of tried: the same entry again is kept, another one refuses the run.
                var names = rawFiles.Select(f => f.Name).Distinct(StringComparer.Ordinal).ToList();
                var stored = await _catalog.Find(s, Builders<CatalogEntry>.Filter.In(c => c.Name, names)).ToListAsync(token);
                var fresh = new List<CatalogEntry>();
                foreach (var entry in rawFiles)
                {
                    var existing = stored.FirstOrDefault(c => c.Name == entry.Name && c.Area == entry.Area);
                    if (existing is null)
                    {
                        fresh.Add(entry);
                    }
                    else if (!SameFile(existing, entry))
                    {
                        await s.AbortTransactionAsync(token);
                        return RunRegistration.Conflicting;
                    }
                }
                if (fresh.Count > 0)
                {
                    await _catalog.InsertManyAsync(s, fresh, cancellationToken: token);
                }
                // The announcement (every file's name, size and checksum) can pass a document's 16 MiB for a large
                // run: it is kept in parts of its own, in the same transaction, and the run document stays small.
                var parts = announcement is null ? [] : AnnouncementParts(run, JsonSerializer.Serialize(announcement, AnnouncementJson));
                if (parts.Count > 0)
                {
                    await _announcements.InsertManyAsync(s, parts, cancellationToken: token);
                }
                await _runs.InsertOneAsync(s, new RunDocument(run, digest, rawFiles.Count, DateTimeOffset.UtcNow, AnnouncementParts: parts.Count), cancellationToken: token);
                return RunRegistration.New;
            }, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // A concurrent registration committed between this one's reads and its writes: answer from what it stored
            // (read locally: it may not be majority-committed yet).
            var other = await _runs.WithReadConcern(ReadConcern.Local).Find(r => r.Run == run).FirstOrDefaultAsync(cancellationToken);
            return other?.Digest == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
        }
    }

    /// <summary>The same catalogued file: size, checksum and kind agree.</summary>
    private static bool SameFile(CatalogEntry stored, CatalogEntry entry) =>
        stored.Size == entry.Size && stored.Adler32 == entry.Adler32 && stored.Kind == entry.Kind;

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken)
    {
        var runs = await Retry(token => _runs.Find(FilterDefinition<RunDocument>.Empty).SortBy(r => r.Run)
            .Project(RunSummaryProjection).ToListAsync(token), cancellationToken);
        return [.. runs.Select(r => new RunRecord(r[Fields.Id].AsInt32, r["files"].AsInt32, ToTime(r["registeredAt"])))];
    }

    public async Task<IReadOnlyList<RunRecorded>> ListAnnouncementsAsync(int afterRun, int limit, CancellationToken cancellationToken)
    {
        var runs = await Retry(token => _runs.Find(AnnouncedAfter(afterRun))
            .SortBy(r => r.Run).Limit(Math.Clamp(limit, 1, 10_000)).ToListAsync(token), cancellationToken);
        var announcements = new List<RunRecorded>(runs.Count);
        foreach (var run in runs)
        {
            // Runs registered before announcements had parts of their own keep theirs inline.
            var json = run.Announcement ?? JoinAnnouncement(await Retry(token => _announcements
                .Find(AnnouncementOf(run.Run)).Sort(AnnouncementOrder).ToListAsync(token), cancellationToken));
            announcements.Add(JsonSerializer.Deserialize<RunRecorded>(json, AnnouncementJson)!);
        }
        return announcements;
    }

    public async Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            await _catalog.InsertOneAsync(entry, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // The unique (name, area) index keeps one entry per copy: the same entry again is a no-op.
            var stored = await _catalog.WithReadConcern(ReadConcern.Local).Find(c => c.Name == entry.Name && c.Area == entry.Area).FirstOrDefaultAsync(cancellationToken);
            if (stored is null || !SameFile(stored, entry))
            {
                throw new ConcurrencyConflictException($"Catalog already holds a different '{entry.Name}' in area '{entry.Area}'.");
            }
        }
    }

    public async Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => _catalog.Find(c => c.Name == name).SortBy(c => c.Area).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken) =>
        await Retry(token => _catalog.Find(CatalogOfKind(kind, campaign))
            .SortBy(c => c.Dataset).ThenBy(c => c.Name).ToListAsync(token), cancellationToken);

    public async Task<bool> MarkBadAsync(string name, string area, string? reason, SingletonFence? fence, CancellationToken cancellationToken)
    {
        var update = Builders<CatalogEntry>.Update.Set(c => c.Bad, reason);
        if (fence is null)
        {
            return (await Retry(token => _catalog.UpdateOneAsync(c => c.Name == name && c.Area == area, update, cancellationToken: token), cancellationToken)).MatchedCount == 1;
        }
        return await db.InTransactionAsync(async (session, token) =>
        {
            await MongoSingletonLeaseStore.RequireAsync(db, session, fence, token);
            return (await _catalog.UpdateOneAsync(session, c => c.Name == name && c.Area == area, update, cancellationToken: token)).MatchedCount == 1;
        }, cancellationToken);
    }

    public static FilterDefinition<CatalogEntry> CatalogOfKind(string kind, string? campaign)
    {
        var filter = Builders<CatalogEntry>.Filter;
        var ofKind = filter.Eq(c => c.Kind, kind);
        return campaign is null ? ofKind : filter.And(ofKind, filter.Eq(c => c.Campaign, campaign));
    }

    /// <summary>The most characters of announcement JSON in one part: at most 3 bytes each in UTF-8, well under 16 MiB.</summary>
    public const int AnnouncementPartChars = 2_000_000;

    /// <summary>An announcement's JSON in parts of at most <see cref="AnnouncementPartChars"/> characters, each one document.</summary>
    public static IReadOnlyList<BsonDocument> AnnouncementParts(int run, string json) =>
        [.. json.Chunk(AnnouncementPartChars).Select((part, index) => new BsonDocument
        {
            { Fields.Id, $"{run}:{index}" }, { Fields.Run, run }, { "part", index }, { "json", new string(part) },
        })];

    public static FilterDefinition<BsonDocument> AnnouncementOf(int run) => Builders<BsonDocument>.Filter.Eq(Fields.Run, run);

    public static SortDefinition<BsonDocument> AnnouncementOrder { get; } = Builders<BsonDocument>.Sort.Ascending("part");

    public static string JoinAnnouncement(IEnumerable<BsonDocument> parts) => string.Concat(parts.OrderBy(p => p["part"].AsInt32).Select(p => p["json"].AsString));

    /// <summary>Runs after <paramref name="afterRun"/> whose announcement is kept, inline (older runs) or in parts.</summary>
    public static FilterDefinition<RunDocument> AnnouncedAfter(int afterRun)
    {
        var filter = Builders<RunDocument>.Filter;
        return filter.Gt(r => r.Run, afterRun) & (filter.Ne(r => r.Announcement, null) | filter.Gt(r => r.AnnouncementParts, 0));
    }

    /// <summary>What the run listing reads of a run: never its announcement.</summary>
    public static ProjectionDefinition<RunDocument> RunSummaryProjection { get; } =
        Builders<RunDocument>.Projection.Include(r => r.Files).Include(r => r.RegisteredAt);
}

/// <summary>
/// A registered run as stored: the digest of its announced files tells a repeat from a conflicting change; the
/// announcement itself (files, conditions) is kept as JSON, read whole and never queried into.
/// </summary>
/// <param name="Announcement">Only in runs registered before announcements were kept in parts of their own.</param>
/// <param name="AnnouncementParts">How many parts of <c>run_announcements</c> hold the announcement's JSON.</param>
public sealed record RunDocument(int Run, string Digest, int Files, DateTimeOffset RegisteredAt, string? Announcement = null, int AnnouncementParts = 0);

