using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Bson.Serialization.Conventions;
using MongoDB.Bson.Serialization.Serializers;
using Pipeline.Contracts;

namespace Pipeline.Production.State;

/// <summary>
/// How the pipeline's records look in MongoDB: camelCase fields, standard UUIDs and times as dates, and each concern's
/// records as its store maps them (<see cref="IMongoStore.MapRecords"/>).
/// </summary>
public static class MongoMapping
{
    private static readonly Lock Gate = new();
    private static bool _registered;

    public static void Register()
    {
        lock (Gate)
        {
            if (_registered)
            {
                return;
            }
            ConventionRegistry.Register("pipeline", new ConventionPack
            {
                new CamelCaseElementNameConvention(),
                new IgnoreExtraElementsConvention(true),
            }, type => type.Namespace?.StartsWith("Pipeline.", StringComparison.Ordinal) == true);
            BsonSerializer.TryRegisterSerializer(new GuidSerializer(GuidRepresentation.Standard));
            BsonSerializer.TryRegisterSerializer(new DateTimeOffsetSerializer(BsonType.DateTime));

            // BSON has no unsigned integers: a trigger mask with its top bit set would overflow an Int32.
            BsonClassMap.TryRegisterClassMap<DatasetSelection>(map =>
            {
                map.AutoMap();
                map.MapMember(x => x.TriggerMask).SetSerializer(new UInt32Serializer(BsonType.Int64));
            });
            StoreConcerns.MapMongoRecords();
            _registered = true;
        }
    }

    /// <summary>Runs from <paramref name="fromRun"/> to <paramref name="toRun"/>, both included.</summary>
    public static BsonDocument RunRange(int fromRun, int toRun) => new() { { "$gte", fromRun }, { "$lte", toRun } };

    /// <summary>Element names the queries and indexes use, in one place.</summary>
    public static class Fields
    {
        public const string Id = "_id";
        public const string Version = "version";
        public const string State = "state";
        public const string Campaign = "campaign";
        public const string Run = "run";
        public const string Stream = "stream";
        public const string Name = "name";
        public const string Deadline = "deadline";
        public const string UpdatedAt = "updatedAt";
        public const string Area = "area";
        public const string Kind = "kind";
        public const string Dataset = "dataset";
        public const string MergedName = "mergedName";
        public const string Section = "section";
        public const string Size = "size";
        public const string AddedAt = "addedAt";
        public const string Archived = "archived";
        public const string Attempt = "attempt";
        public const string FailureReason = "failureReason";
        public const string FailureStage = "failureStage";
        public const string FailureSignature = "failureSignature";
        public const string FailureRelease = "failureRelease";
        public const string Open = "open";
        public const string Sequence = "sequence";
    }
}
