using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Merger;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

/// <summary>
/// The archiver writes a dataset's merged files in the order the merger numbered them, from its own queue: a file whose
/// request overtook an earlier one's waits for it, and the archiver asks the merger for the earlier one again.
/// </summary>
public sealed class When_a_merged_files_request_is_lost
{
    [Fact]
    public async Task Should_ask_the_merger_for_it_again_and_archive_both_in_the_mergers_order()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        var at = DateTimeOffset.UtcNow;
        var committed = new List<MergedFileRecord>();
        foreach (var name in new[] { "prompt/muon/muon_run000001-000001_first.evt", "prompt/muon/muon_run000002-000002_second.evt" })
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes($"the bytes of {name}");
            await pipeline.Areas.Output.WriteAsync(name, (stream, ct) => stream.WriteAsync(bytes, ct).AsTask(), CancellationToken.None);
            var record = new MergedFileRecord(name, "prompt", "muon", bytes.Length, Adler32Checksum.Format(Adler32Checksum.Of(bytes)), 1, false, at, at);
            committed.Add((await merges.CommitMergeAsync(record, [], CancellationToken.None))!);
        }

        // Only the second file's request reaches the archiver: the first one's was lost with its merger.
        await pipeline.Services.GetRequiredService<IBus>().Publish(MergeService.ToArchiveRequest(committed[1], []));

        var catalog = pipeline.Services.GetRequiredService<ICatalog>();
        var archived = await Eventually.Until(() => catalog.ListAsync(CatalogEntry.Merged, "prompt", CancellationToken.None), entries => entries.Count == 2,
            TimeSpan.FromSeconds(60), "both merged files archived", entries => string.Join(", ", entries.Select(e => e.Name)));
        var first = archived.Single(e => e.Name.EndsWith("_first.evt", StringComparison.Ordinal));
        var second = archived.Single(e => e.Name.EndsWith("_second.evt", StringComparison.Ordinal));
        Assert.True(first.CreatedAt <= second.CreatedAt, $"archived {first.Name} at {first.CreatedAt:O}, {second.Name} at {second.CreatedAt:O}");
        Assert.Equal([1L, 2L], committed.Select(m => m.Sequence));
        var queue = pipeline.Services.GetRequiredService<StoreBackend>().ArchiveQueue;
        // The catalog entry is written before the queue records the file archived (after its raw files are told), so
        // the record is waited for, not read once.
        foreach (var merged in committed)
        {
            await Eventually.Until(() => queue.GetAsync(merged.Name, CancellationToken.None), file => file?.State == ArchivingState.Archived,
                TimeSpan.FromSeconds(30), $"{merged.Name} recorded archived", file => $"state {file?.State}");
        }
    }
}
