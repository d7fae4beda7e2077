using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Flow;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Stager;

/// <summary>Deletes a staged copy nobody will reconstruct (its campaign was cancelled) and gives its room in the cache back.</summary>
public sealed class DiscardStagedFileConsumer(StorageAreas areas, AreaGate gate, ILogger<DiscardStagedFileConsumer> logger) : IConsumer<DiscardStagedFile>
{
    public async Task Consume(ConsumeContext<DiscardStagedFile> context)
    {
        var name = context.Message.CachedName;
        if (AreaNames.Problem(name) is { } problem)
        {
            throw new ArgumentException($"Cannot discard '{name}': {problem}");
        }
        areas.Cache.Delete(name);
        await gate.ReleaseAsync(StorageOptions.Cache, name);
        logger.LogInformation("Discarded {CachedName} of {FileId}: campaign {Campaign} was cancelled", name, context.Message.FileId, context.Message.Campaign);
    }
}
