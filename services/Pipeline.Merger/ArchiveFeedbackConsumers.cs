using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Merger;

/// <summary>
/// Marks a merged file archived in the merger's own record once the archive reports it, and removes its inputs from
/// the unmerged area: until then they are the source a corrupted merged file is made again from. Repeats are harmless: the mark
/// stays, an input already removed is skipped.
/// </summary>
public sealed class OutputsArchivedConsumer(IMergeStore merges, StorageAreas areas, AreaGate gate) : IConsumer<OutputsArchived>
{
    public async Task Consume(ConsumeContext<OutputsArchived> context)
    {
        var message = context.Message;
        await merges.MarkArchivedAsync(message.MergedName, context.CancellationToken);
        var archived = message.OutputIds.ToHashSet(StringComparer.Ordinal);
        foreach (var output in await merges.ListOutputsOfAsync(message.MergedName, context.CancellationToken))
        {
            if (archived.Contains(output.OutputId))
            {
                await areas.Unmerged.DeleteAsync(output.Name, context.CancellationToken);
                await gate.ReleaseAsync(StorageOptions.Unmerged, output.Name);
            }
        }
    }
}

/// <summary>
/// Makes a merged file again from its inputs when the archiver found it corrupted in the output area. The merge is
/// deterministic (inputs in the order they were merged, ties by input), so the new file must match the recorded size
/// and Adler-32 exactly; the record, its manifest and the catalog stay as they are. When the inputs are gone or fail
/// their own checksums, the file cannot be made again here: an alert says so and the file stays unarchived.
/// </summary>
public sealed class RemakeMergedFileConsumer(
    IMergeStore merges,
    StorageAreas areas,
    IAlerts alerts,
    ILogger<RemakeMergedFileConsumer> logger) : IConsumer<RemakeMergedFile>
{
    /// <summary>What the merger logs for each merged file it made again, for the fault suite to count.</summary>
    public const string RemadeMessage = "Made merged file again from its inputs";

    public static string AlertKey(string mergedName) => $"merged-file-corrupt:{mergedName}";

    public async Task Consume(ConsumeContext<RemakeMergedFile> context)
    {
        var message = context.Message;
        var merged = await merges.GetMergedFileAsync(message.MergedName, context.CancellationToken);
        if (merged is null or { Archived: true })
        {
            return;
        }
        var inputs = await merges.ListOutputsOfAsync(merged.Name, context.CancellationToken);
        // A repeated request (the archiver retries) finds the file made again already.
        if (await areas.Output.ExistsAsync(merged.Name, context.CancellationToken))
        {
            var (size, adler) = await areas.Output.ChecksumAsync(merged.Name, context.CancellationToken);
            if (size == merged.Size && Adler32Checksum.Same(Adler32Checksum.Format(adler), merged.Adler32))
            {
                await context.PublishBoundedAsync(MergeService.ToArchiveRequest(merged, inputs));
                return;
            }
        }
        var gone = new List<string>();
        foreach (var input in inputs)
        {
            if (!await areas.Unmerged.ExistsAsync(input.Name, context.CancellationToken))
            {
                gone.Add(input.Name);
            }
        }
        if (gone.Count > 0)
        {
            await CannotRemakeAsync(merged, $"{gone.Count} of its {inputs.Count} inputs are no longer in the unmerged area ({gone[0]}…)", context.CancellationToken);
            return;
        }
        (long Size, uint Adler32, long Events) made;
        try
        {
            made = await MergedFileWriter.WriteAsync(areas.Unmerged, [.. inputs.Select(o => new MergeInput(o.Name, o.Size, o.Adler32, o.Events))],
                areas.Output, merged.Name, context.CancellationToken);
        }
        catch (Exception ex) when (ex is InvalidDataException or Pipeline.EventFormat.EventFormatException)
        {
            await CannotRemakeAsync(merged, ex.Message, context.CancellationToken);
            return;
        }
        if (made.Size != merged.Size || !Adler32Checksum.Same(Adler32Checksum.Format(made.Adler32), merged.Adler32) || made.Events != merged.Events)
        {
            await CannotRemakeAsync(merged, $"merged again it has {made.Size} bytes adler32 {Adler32Checksum.Format(made.Adler32)}, not the recorded {merged.Size} bytes adler32 {merged.Adler32}", context.CancellationToken);
            return;
        }
        logger.LogWarning(RemadeMessage + " {MergedName} ({Inputs} inputs, {Size} bytes, adler32 {Adler32}): {Reason}",
            merged.Name, inputs.Count, made.Size, merged.Adler32, message.Reason);
        await context.PublishBoundedAsync(MergeService.ToArchiveRequest(merged, inputs));
    }

    private async Task CannotRemakeAsync(MergedFileRecord merged, string why, CancellationToken cancellationToken)
    {
        var text = $"Merged file {merged.Name} of {merged.Campaign}/{merged.Dataset} is corrupted in the output area and cannot be made again from its inputs: {why}. It stays unarchived; its raw files need reconstructing again.";
        logger.LogError("{Alert}", text);
        await alerts.RaiseAsync(AlertKey(merged.Name), "merged-file-corrupt", "critical", text, cancellationToken);
    }
}

/// <summary>
/// Sends a dataset's merged file to the archiver again when the archiver finds it missing from the dataset's order. It
/// is sent whatever the merger's own record says: an archiver that has it already only reports it again.
/// </summary>
public sealed class ResendMergedFileConsumer(IMergeStore merges, ILogger<ResendMergedFileConsumer> logger) : IConsumer<ResendMergedFile>
{
    public async Task Consume(ConsumeContext<ResendMergedFile> context)
    {
        var message = context.Message;
        if (await merges.GetMergedFileAsync(message.Campaign, message.Dataset, message.Sequence, context.CancellationToken) is not { } merged)
        {
            logger.LogWarning("The archiver asked for file {Sequence} of {Campaign}/{Dataset}, which the merger never made", message.Sequence, message.Campaign, message.Dataset);
            return;
        }
        logger.LogInformation("Sending merged file {MergedName} ({Sequence} of {Campaign}/{Dataset}) to the archiver again", merged.Name, merged.Sequence, merged.Campaign, merged.Dataset);
        await context.PublishBoundedAsync(MergeService.ToArchiveRequest(merged, await merges.ListOutputsOfAsync(merged.Name, context.CancellationToken)));
    }
}

public sealed class ResendMergedFileConsumerDefinition() : QueueConsumerDefinition<ResendMergedFileConsumer>(QueueName, [100, 500, 2000, 10000])
{
    public const string QueueName = "merger-resend";
}

/// <summary>The archive's news to the merger, on a queue of its own so that pausing the merger does not hold it back.</summary>
public sealed class OutputsArchivedConsumerDefinition() : QueueConsumerDefinition<OutputsArchivedConsumer>(QueueName, [100, 500, 2000, 10000], outbox: false)
{
    public const string QueueName = "merger-archived";
}

public sealed class RemakeMergedFileConsumerDefinition() : QueueConsumerDefinition<RemakeMergedFileConsumer>(QueueName, [100, 500, 2000, 10000])
{
    public const string QueueName = "merger-remake";
}
