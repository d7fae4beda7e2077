using System.Text.Json;
using MongoDB.Driver;
using Pipeline.Contracts;
using static Pipeline.Production.State.Mongo.MongoMapping;
using static Pipeline.Production.State.Mongo.MongoStoreContext;

namespace Pipeline.Production.State.Mongo;

/// <summary>
/// Runs as announced and the catalog of every copy, in MongoDB: registering a run with its raw files is one
/// transaction, so either all of it is stored or none.
/// </summary>
public sealed class MongoRunCatalog(MongoStoreContext db) : IRunRegistry, ICatalog
{
    public async Task<RunRegistration> RegisterRunAsync(int run, string digest, IReadOnlyList<CatalogEntry> rawFiles, RunRecorded? announcement, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        try
        {
            // The body only reads, then inserts: WithTransactionAsync runs it again after a transient error or a
            // write conflict with a concurrent registration, and the second time it finds what the other stored.
            return await session.WithTransactionAsync(async (s, token) =>
            {
                var known = await db.Runs.Find(s, r => r.Run == run).FirstOrDefaultAsync(token);
                if (known is not null)
                {
                    return known.Digest == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
                }
                // A write error such as a duplicate key aborts a MongoDB transaction, so catalogued files are
                // looked up first instead of tried: the same entry again is kept, another one refuses the run.
                var names = rawFiles.Select(f => f.Name).Distinct(StringComparer.Ordinal).ToList();
                var stored = await db.Catalog.Find(s, Builders<CatalogEntry>.Filter.In(c => c.Name, names)).ToListAsync(token);
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
                    await db.Catalog.InsertManyAsync(s, fresh, cancellationToken: token);
                }
                // The announcement (every file's name, size and checksum) can pass a document's 16 MiB for a large
                // run: it is kept in parts of its own, in the same transaction, and the run document stays small.
                var parts = announcement is null ? [] : MongoQueries.AnnouncementParts(run, JsonSerializer.Serialize(announcement, AnnouncementJson));
                if (parts.Count > 0)
                {
                    await db.Announcements.InsertManyAsync(s, parts, cancellationToken: token);
                }
                await db.Runs.InsertOneAsync(s, new RunDocument(run, digest, rawFiles.Count, DateTimeOffset.UtcNow, AnnouncementParts: parts.Count), cancellationToken: token);
                return RunRegistration.New;
            }, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // A concurrent registration committed between this one's reads and its writes: answer from what it stored
            // (read locally: it may not be majority-committed yet).
            var other = await db.Runs.WithReadConcern(ReadConcern.Local).Find(r => r.Run == run).FirstOrDefaultAsync(cancellationToken);
            return other?.Digest == digest ? RunRegistration.AlreadyRegistered : RunRegistration.Conflicting;
        }
    }



    /// <summary>The same catalogued file: size, checksum and kind agree.</summary>
    private static bool SameFile(CatalogEntry stored, CatalogEntry entry) =>
        stored.Size == entry.Size && stored.Adler32 == entry.Adler32 && stored.Kind == entry.Kind;

    public async Task<IReadOnlyList<RunRecord>> ListRunsAsync(CancellationToken cancellationToken)
    {
        var runs = await Retry(token => db.Runs.Find(FilterDefinition<RunDocument>.Empty).SortBy(r => r.Run)
            .Project(MongoQueries.RunSummaryProjection).ToListAsync(token), cancellationToken);
        return [.. runs.Select(r => new RunRecord(r[Fields.Id].AsInt32, r["files"].AsInt32, ToTime(r["registeredAt"])))];
    }

    public async Task<IReadOnlyList<RunRecorded>> ListAnnouncementsAsync(int afterRun, int limit, CancellationToken cancellationToken)
    {
        var runs = await Retry(token => db.Runs.Find(MongoQueries.AnnouncedAfter(afterRun))
            .SortBy(r => r.Run).Limit(Math.Clamp(limit, 1, 10_000)).ToListAsync(token), cancellationToken);
        var announcements = new List<RunRecorded>(runs.Count);
        foreach (var run in runs)
        {
            // Runs registered before announcements had parts of their own keep theirs inline.
            var json = run.Announcement ?? MongoQueries.JoinAnnouncement(await Retry(token => db.Announcements
                .Find(MongoQueries.AnnouncementOf(run.Run)).Sort(MongoQueries.AnnouncementOrder).ToListAsync(token), cancellationToken));
            announcements.Add(JsonSerializer.Deserialize<RunRecorded>(json, AnnouncementJson)!);
        }
        return announcements;
    }

    public async Task AddAsync(CatalogEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            await db.Catalog.InsertOneAsync(entry, cancellationToken: cancellationToken);
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // The unique (name, area) index keeps one entry per copy: the same entry again is a no-op.
            var stored = await db.Catalog.WithReadConcern(ReadConcern.Local).Find(c => c.Name == entry.Name && c.Area == entry.Area).FirstOrDefaultAsync(cancellationToken);
            if (stored is null || !SameFile(stored, entry))
            {
                throw new ConcurrencyConflictException($"Catalog already holds a different '{entry.Name}' in area '{entry.Area}'.");
            }
        }
    }

    public async Task<IReadOnlyList<CatalogEntry>> FindAsync(string name, CancellationToken cancellationToken) =>
        await Retry(token => db.Catalog.Find(c => c.Name == name).SortBy(c => c.Area).ToListAsync(token), cancellationToken);

    public async Task<IReadOnlyList<CatalogEntry>> ListAsync(string kind, string? campaign, CancellationToken cancellationToken) =>
        await Retry(token => db.Catalog.Find(MongoQueries.CatalogOfKind(kind, campaign))
            .SortBy(c => c.Dataset).ThenBy(c => c.Name).ToListAsync(token), cancellationToken);

    public async Task<bool> MarkBadAsync(string name, string area, string? reason, CancellationToken cancellationToken)
    {
        var result = await Retry(token => db.Catalog.UpdateOneAsync(c => c.Name == name && c.Area == area,
            Builders<CatalogEntry>.Update.Set(c => c.Bad, reason), cancellationToken: token), cancellationToken);
        return result.MatchedCount == 1;
    }
}

/// <summary>
/// A registered run as stored: the digest of its announced files tells a repeat from a conflicting change; the
/// announcement itself (files, conditions) is kept as JSON, read whole and never queried into.
/// </summary>
/// <param name="Announcement">Only in runs registered before announcements were kept in parts of their own.</param>
/// <param name="AnnouncementParts">How many parts of <c>run_announcements</c> hold the announcement's JSON.</param>
public sealed record RunDocument(int Run, string Digest, int Files, DateTimeOffset RegisteredAt, string? Announcement = null, int AnnouncementParts = 0);

