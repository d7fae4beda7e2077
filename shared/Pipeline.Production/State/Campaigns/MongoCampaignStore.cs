using System.Text.Json;
using MongoDB.Bson;
using MongoDB.Driver;
using Pipeline.Infrastructure.Hosting;
using static Pipeline.Production.State.MongoMapping;
using static Pipeline.Production.State.MongoStoreContext;

namespace Pipeline.Production.State;

/// <summary>Campaigns (definitions as JSON beside the fields compare-and-set uses) and calibrations, in MongoDB.</summary>
public sealed class MongoCampaignStore(MongoStoreContext db) : ICampaignStore, IMongoStore
{
    public const string CampaignsCollection = "campaigns";
    public const string CalibrationsCollection = "calibrations";

    public static IReadOnlyList<MongoCollection> Schema { get; } = [new(CampaignsCollection), new(CalibrationsCollection)];

    private readonly IMongoCollection<BsonDocument> _campaigns = db.Collection<BsonDocument>(CampaignsCollection);
    private readonly IMongoCollection<BsonDocument> _calibrations = db.Collection<BsonDocument>(CalibrationsCollection);

    public async Task<CampaignCreation> CreateCampaignAsync(CampaignRecord campaign, CancellationToken cancellationToken)
    {
        try
        {
            await _campaigns.InsertOneAsync(CampaignDocument(campaign, campaign.Version), cancellationToken: cancellationToken);
            return CampaignCreation.Created;
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            // Read locally: the campaign that won may not be majority-committed yet.
            var stored = await _campaigns.WithReadConcern(ReadConcern.Local).Find(new BsonDocument(Fields.Id, campaign.Name)).FirstOrDefaultAsync(cancellationToken);
            return stored is not null && FromCampaignDocument(stored).Digest == campaign.Digest ? CampaignCreation.AlreadyExists : CampaignCreation.Conflicting;
        }
    }

    public async Task<CampaignRecord?> GetCampaignAsync(string name, CancellationToken cancellationToken)
    {
        var document = await Retry(token => _campaigns.Find(new BsonDocument(Fields.Id, name)).FirstOrDefaultAsync(token), cancellationToken);
        return document is null ? null : FromCampaignDocument(document);
    }

    public async Task<IReadOnlyList<CampaignRecord>> ListCampaignsAsync(CancellationToken cancellationToken)
    {
        var documents = await Retry(token => _campaigns.Find(FilterDefinition<BsonDocument>.Empty).Sort(new BsonDocument(Fields.Id, 1)).ToListAsync(token), cancellationToken);
        return [.. documents.Select(FromCampaignDocument)];
    }

    public async Task<bool> ReplaceCampaignAsync(CampaignRecord campaign, int expectedVersion, SingletonFence? fence, CancellationToken cancellationToken)
    {
        var filter = new BsonDocument { { Fields.Id, campaign.Name }, { Fields.Version, expectedVersion } };
        var document = CampaignDocument(campaign, expectedVersion + 1);
        if (fence is null)
        {
            return (await _campaigns.ReplaceOneAsync(filter, document, cancellationToken: cancellationToken)).ModifiedCount == 1;
        }
        return await db.InTransactionAsync(async (session, token) =>
        {
            await MongoSingletonLeaseStore.RequireAsync(db, session, fence, token);
            return (await _campaigns.ReplaceOneAsync(session, filter, document, cancellationToken: token)).ModifiedCount == 1;
        }, cancellationToken);
    }

    private static BsonDocument CampaignDocument(CampaignRecord campaign, int version) => new()
    {
        { Fields.Id, campaign.Name },
        { Fields.Version, version },
        { "digest", campaign.Digest },
        { "status", campaign.Status },
        { "record", JsonSerializer.Serialize(campaign with { Version = version }, AnnouncementJson) },
    };

    private static CampaignRecord FromCampaignDocument(BsonDocument document) =>
        JsonSerializer.Deserialize<CampaignRecord>(document["record"].AsString, AnnouncementJson)! with { Version = document[Fields.Version].ToInt32() };

    public async Task<bool> AddCalibrationAsync(CalibrationRecord calibration, CancellationToken cancellationToken)
    {
        // The id is the registration itself, so registering it again is a duplicate key, not a second record.
        var id = $"{calibration.Tag}:{calibration.RunFrom}:{calibration.RunTo}";
        try
        {
            await _calibrations.InsertOneAsync(new BsonDocument
            {
                { Fields.Id, id }, { "tag", calibration.Tag }, { "runFrom", calibration.RunFrom }, { "runTo", calibration.RunTo },
                { "by", calibration.RegisteredBy }, { "at", calibration.RegisteredAt.UtcDateTime },
            }, cancellationToken: cancellationToken);
            return true;
        }
        catch (MongoException ex) when (IsDuplicateKey(ex))
        {
            return false;
        }
    }

    public async Task<IReadOnlyList<CalibrationRecord>> ListCalibrationsAsync(string? tag, CancellationToken cancellationToken)
    {
        var filter = tag is null ? new BsonDocument() : new BsonDocument("tag", tag);
        var documents = await Retry(token => _calibrations.Find(filter)
            .Sort(Builders<BsonDocument>.Sort.Ascending("tag").Ascending("runFrom").Ascending("runTo")).ToListAsync(token), cancellationToken);
        return [.. documents.Select(d => new CalibrationRecord(d["tag"].AsString, d["runFrom"].ToInt32(), d["runTo"].ToInt32(), d["by"].AsString, ToTime(d["at"])))];
    }
}
