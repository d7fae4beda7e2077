using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;

namespace Pipeline.Stager;

/// <summary>
/// Deletes a staged copy nobody will read again (its campaign was cancelled, or its file was reconstructed) and gives
/// its room in the cache back.
/// </summary>
public sealed class DiscardStagedFileConsumer(StorageAreas areas, AreaGate gate, ILogger<DiscardStagedFileConsumer> logger) : IConsumer<DiscardStagedFile>
{
    public async Task Consume(ConsumeContext<DiscardStagedFile> context)
    {
        var name = context.Message.CachedName;
        if (AreaNames.Problem(name) is { } problem)
        {
            throw new ArgumentException($"Cannot discard '{name}': {problem}");
        }
        // After a reconstruction the worker has usually removed it already: then only its room is given back (again; harmless).
        var present = await areas.Cache.DeleteAsync(name, context.CancellationToken);
        await gate.ReleaseAsync(StorageOptions.Cache, name);
        if (present)
        {
            logger.LogInformation("Discarded the staged copy {CachedName} of {FileId} (campaign {Campaign}): nobody will read it again", name, context.Message.FileId, context.Message.Campaign);
        }
    }
}

/// <summary>
/// Tried again for about two minutes: a cache on a storage server that is restarting refuses the delete for a while,
/// and a discard that gave up would leave the copy in the cache for good.
/// </summary>
public sealed class DiscardStagedFileConsumerDefinition() : QueueConsumerDefinition<DiscardStagedFileConsumer>(QueueName, [1000, 5000, 15000, 30000, 60000], outbox: false)
{
    public const string QueueName = "discard-staged-file";
}
