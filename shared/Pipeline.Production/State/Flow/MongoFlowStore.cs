using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>Flow control in MongoDB: the areas' ledgers, the movers and the operators' settings.</summary>
public sealed class MongoFlowStore(MongoStoreContext db) : IFlowStore, IMongoStore
{
    public const string AreaFilesCollection = "area_files";
    public const string AreasCollection = "areas";
    public const string MoversCollection = "movers";
    public const string SettingsCollection = "settings";

    public static IReadOnlyList<MongoCollection> Schema { get; } =
    [
        new(AreaFilesCollection, [MongoCollection.Index("area_at", Fields.Area, "at")]),
        new(AreasCollection),
        new(MoversCollection),
        new(SettingsCollection),
    ];

    private readonly IMongoCollection<BsonDocument> _areaFiles = db.Collection<BsonDocument>(AreaFilesCollection);
    private readonly IMongoCollection<BsonDocument> _areas = db.Collection<BsonDocument>(AreasCollection);
    private readonly IMongoCollection<BsonDocument> _movers = db.Collection<BsonDocument>(MoversCollection);
    private readonly IMongoCollection<BsonDocument> _settings = db.Collection<BsonDocument>(SettingsCollection);

    // An area's totals are one document and its files one document each; every change to both runs in a
    // transaction, so concurrent admissions conflict on the totals and one of them is retried with the other's bytes.

    public async Task<bool> TryReserveAsync(string area, string name, long bytes, AreaLimits limits, DateTimeOffset at, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        return await session.WithTransactionAsync(async (s, token) =>
        {
            var usage = await ReadAreaAsync(s, area, token);
            var held = await HeldBytesAsync(s, area, name, token);
            if (held is null)
            {
                if (AreaLedger.Blocked(usage.Blocked, usage.Bytes, limits))
                {
                    // A refusal writes only when it blocks the area: stages waiting for room ask every quarter second,
                    // and a write per ask would make every waiter's transaction conflict on this document.
                    if (!usage.Blocked)
                    {
                        await WriteAreaAsync(s, usage with { Blocked = true }, token);
                    }
                    return false;
                }
                usage = usage with { Files = usage.Files + 1, Blocked = false };
            }
            await PutAreaFileAsync(s, area, new AreaFile(name, bytes), at, token);
            var total = usage.Bytes - (held ?? 0) + bytes;
            await WriteAreaAsync(s, usage with
            {
                Bytes = total,
                PeakBytes = Math.Max(usage.PeakBytes, total),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, bytes),
            }, token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task ReplaceReservationAsync(string area, string name, IReadOnlyList<AreaFile> files, DateTimeOffset at, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        await session.WithTransactionAsync(async (s, token) =>
        {
            var usage = await ReadAreaAsync(s, area, token);
            var removed = await HeldBytesAsync(s, area, name, token);
            var bytes = usage.Bytes - (removed ?? 0);
            var count = usage.Files - (removed is null ? 0 : 1);
            await _areaFiles.DeleteOneAsync(s, AreaFileId(area, name), cancellationToken: token);
            foreach (var file in files)
            {
                var held = await HeldBytesAsync(s, area, file.Name, token);
                bytes += file.Bytes - (held ?? 0);
                count += held is null ? 1 : 0;
                await PutAreaFileAsync(s, area, file, at, token);
            }
            await WriteAreaAsync(s, usage with
            {
                Bytes = bytes,
                Files = count,
                PeakBytes = Math.Max(usage.PeakBytes, bytes),
                LargestFileBytes = Math.Max(usage.LargestFileBytes, files.Count == 0 ? 0 : files.Max(f => f.Bytes)),
            }, token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task ReleaseAsync(string area, string name, SingletonFence? fence, CancellationToken cancellationToken)
    {
        using var session = await db.Client.StartSessionAsync(cancellationToken: cancellationToken);
        await session.WithTransactionAsync(async (s, token) =>
        {
            await MongoSingletonLeaseStore.RequireAsync(db, s, fence, token);
            var held = await HeldBytesAsync(s, area, name, token);
            if (held is null)
            {
                return false;
            }
            await _areaFiles.DeleteOneAsync(s, AreaFileId(area, name), cancellationToken: token);
            var usage = await ReadAreaAsync(s, area, token);
            await WriteAreaAsync(s, usage with { Bytes = usage.Bytes - held.Value, Files = usage.Files - 1 }, token);
            return true;
        }, cancellationToken: cancellationToken);
    }

    public async Task<IReadOnlyList<AreaUsage>> ListAreaUsageAsync(CancellationToken cancellationToken)
    {
        var areas = await Retry(token => _areas.Find(FilterDefinition<BsonDocument>.Empty).Sort(new BsonDocument(Fields.Id, 1)).ToListAsync(token), cancellationToken);
        return areas.Select(ToAreaUsage).ToList();
    }

    public async Task<IReadOnlyList<AreaReservation>> ListReservationsAsync(string area, DateTimeOffset before, int limit, CancellationToken cancellationToken)
    {
        var files = await Retry(token => _areaFiles.Find(new BsonDocument { { Fields.Area, area }, { "at", new BsonDocument("$lt", before.UtcDateTime) } })
            .Sort(new BsonDocument("at", 1)).Limit(limit).ToListAsync(token), cancellationToken);
        return files.Select(f => new AreaReservation(area, f[Fields.Name].AsString, f["bytes"].ToInt64(), ToTime(f["at"]))).ToList();
    }

    private static BsonDocument AreaFileId(string area, string name) =>
        new(Fields.Id, new BsonDocument { { Fields.Area, area }, { Fields.Name, name } });

    private async Task<AreaUsage> ReadAreaAsync(IClientSessionHandle session, string area, CancellationToken cancellationToken)
    {
        var document = await _areas.Find(session, new BsonDocument(Fields.Id, area)).FirstOrDefaultAsync(cancellationToken);
        return document is null ? new AreaUsage(area, 0, 0, false, 0, 0) : ToAreaUsage(document);
    }

    private static AreaUsage ToAreaUsage(BsonDocument d) =>
        new(d[Fields.Id].AsString, d["bytes"].ToInt64(), d["files"].ToInt64(), d["blocked"].AsBoolean, d["peakBytes"].ToInt64(), d["largestFileBytes"].ToInt64());

    private Task WriteAreaAsync(IClientSessionHandle session, AreaUsage usage, CancellationToken cancellationToken) =>
        _areas.ReplaceOneAsync(session, new BsonDocument(Fields.Id, usage.Area), new BsonDocument
        {
            { Fields.Id, usage.Area }, { "bytes", usage.Bytes }, { "files", usage.Files }, { "blocked", usage.Blocked },
            { "peakBytes", usage.PeakBytes }, { "largestFileBytes", usage.LargestFileBytes },
        }, new ReplaceOptions { IsUpsert = true }, cancellationToken);

    private async Task<long?> HeldBytesAsync(IClientSessionHandle session, string area, string name, CancellationToken cancellationToken)
    {
        var document = await _areaFiles.Find(session, AreaFileId(area, name)).FirstOrDefaultAsync(cancellationToken);
        return document?["bytes"].ToInt64();
    }

    private Task PutAreaFileAsync(IClientSessionHandle session, string area, AreaFile file, DateTimeOffset at, CancellationToken cancellationToken)
    {
        var id = AreaFileId(area, file.Name);
        return _areaFiles.UpdateOneAsync(session, id, new BsonDocument
        {
            { "$set", new BsonDocument("bytes", file.Bytes) },
            { "$setOnInsert", new BsonDocument { { Fields.Area, area }, { Fields.Name, file.Name }, { "at", at.UtcDateTime } } },
        }, new UpdateOptions { IsUpsert = true }, cancellationToken);
    }

    // The movers are one document, replaced by compare-and-set on its version: the limit and the one writer per
    // dataset are checked against all leases at once, which separate documents could not do without a race.
    private const string MoversId = "movers";

    /// <remarks>
    /// Leases are judged by the server's clock, not <paramref name="callerNow"/>: archivers on several hosts share
    /// them, and one whose clock ran ahead would otherwise take a lease that is still live.
    /// </remarks>
    public async Task<bool> TryAcquireMoverAsync(string dataset, string holder, int limit, DateTimeOffset callerNow, TimeSpan lease, CancellationToken cancellationToken)
    {
        while (true)
        {
            var now = await db.ServerTimeAsync(cancellationToken);
            var (version, leases) = await ReadMoversAsync(cancellationToken);
            var live = leases.Where(l => l.Expires > now).ToList();
            var current = live.FirstOrDefault(l => l.Dataset == dataset);
            if (current is not null && current.Holder != holder)
            {
                return false;
            }
            if (current is null && live.Count >= limit)
            {
                return false;
            }
            live.RemoveAll(l => l.Dataset == dataset);
            live.Add(new MoverLease(dataset, holder, current?.Since ?? now, now + lease));
            if (await WriteMoversAsync(version, live, cancellationToken))
            {
                return true;
            }
        }
    }

    public async Task ReleaseMoverAsync(string dataset, string holder, CancellationToken cancellationToken)
    {
        while (true)
        {
            var (version, leases) = await ReadMoversAsync(cancellationToken);
            if (!leases.Any(l => l.Dataset == dataset && l.Holder == holder))
            {
                return;
            }
            if (await WriteMoversAsync(version, [.. leases.Where(l => !(l.Dataset == dataset && l.Holder == holder))], cancellationToken))
            {
                return;
            }
        }
    }

    public async Task<IReadOnlyList<MoverLease>> ListMoversAsync(DateTimeOffset callerNow, CancellationToken cancellationToken)
    {
        var now = await db.ServerTimeAsync(cancellationToken);
        return [.. (await ReadMoversAsync(cancellationToken)).Leases.Where(l => l.Expires > now).OrderBy(l => l.Dataset, StringComparer.Ordinal)];
    }

    private async Task<(long Version, List<MoverLease> Leases)> ReadMoversAsync(CancellationToken cancellationToken)
    {
        var document = await Retry(token => _movers.Find(new BsonDocument(Fields.Id, MoversId)).FirstOrDefaultAsync(token), cancellationToken);
        if (document is null)
        {
            return (0, []);
        }
        var leases = document["leases"].AsBsonArray.Select(l => l.AsBsonDocument)
            .Select(l => new MoverLease(l[Fields.Dataset].AsString, l["holder"].AsString, ToTime(l["since"]), ToTime(l["expires"])))
            .ToList();
        return (document[Fields.Version].ToInt64(), leases);
    }

    private async Task<bool> WriteMoversAsync(long version, IReadOnlyList<MoverLease> leases, CancellationToken cancellationToken)
    {
        var document = new BsonDocument
        {
            { Fields.Id, MoversId },
            { Fields.Version, version + 1 },
            { "leases", new BsonArray(leases.Select(l => new BsonDocument
                {
                    { Fields.Dataset, l.Dataset }, { "holder", l.Holder }, { "since", l.Since.UtcDateTime }, { "expires", l.Expires.UtcDateTime },
                })) },
        };
        try
        {
            if (version == 0)
            {
                await _movers.InsertOneAsync(document, cancellationToken: cancellationToken);
                return true;
            }
            var replaced = await _movers.ReplaceOneAsync(new BsonDocument { { Fields.Id, MoversId }, { Fields.Version, version } }, document, cancellationToken: cancellationToken);
            return replaced.ModifiedCount == 1;
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Another archiver created the document first: read it and try again.
            return false;
        }
    }

    public async Task SetSettingAsync(FlowSetting setting, CancellationToken cancellationToken) =>
        await _settings.ReplaceOneAsync(new BsonDocument(Fields.Id, setting.Key), new BsonDocument
        {
            { Fields.Id, setting.Key }, { "value", setting.Value }, { "by", setting.By }, { "at", setting.At.UtcDateTime },
        }, new ReplaceOptions { IsUpsert = true }, cancellationToken);

    public async Task<bool> RemoveSettingAsync(string key, CancellationToken cancellationToken) =>
        (await _settings.DeleteOneAsync(new BsonDocument(Fields.Id, key), cancellationToken)).DeletedCount > 0;

    public async Task<IReadOnlyList<FlowSetting>> ListSettingsAsync(CancellationToken cancellationToken)
    {
        var settings = await Retry(token => _settings.Find(FilterDefinition<BsonDocument>.Empty).Sort(new BsonDocument(Fields.Id, 1)).ToListAsync(token), cancellationToken);
        return settings.Select(d => new FlowSetting(d[Fields.Id].AsString, d["value"].AsString, d["by"].AsString, ToTime(d["at"]))).ToList();
    }
}
