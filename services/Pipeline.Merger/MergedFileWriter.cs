using Pipeline.EventFormat;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Merger;

/// <summary>An input of a merge as its producer reported it.</summary>
public sealed record MergeInput(string Name, long Size, string Adler32, long Events);

/// <summary>
/// Writes one merged file: a streaming k-way merge of event files in (run, section, event) order, each
/// input checked against its reported size, Adler-32 and event count while it is read, the output
/// checksummed while it is written. One pass over the bytes; memory holds one event per input. The inputs are read
/// where the workers left them, in the unmerged area: a folder, or a storage server streamed from.
/// </summary>
public static class MergedFileWriter
{
    /// <summary>Read-ahead per input: a merge of many inputs holds one of these for each.</summary>
    private const int InputBufferSize = 256 << 10;

    public static async Task<(long Size, uint Adler32, long Events)> WriteAsync(
        StorageArea inputArea, IReadOnlyList<MergeInput> inputs, StorageArea outputArea, string name, CancellationToken cancellationToken) =>
        await WriteAsync(inputArea, inputs, outputArea, name, null, cancellationToken);

    /// <param name="ranges">When given (one per input), receives the events each input contributed, for the merged file's manifest.</param>
    public static async Task<(long Size, uint Adler32, long Events)> WriteAsync(
        StorageArea inputArea, IReadOnlyList<MergeInput> inputs, StorageArea outputArea, string name, EventRange[]? ranges, CancellationToken cancellationToken)
    {
        long events = 0;
        var (size, adler) = await outputArea.WriteAsync(name, async (target, token) =>
        {
            // The checksums sit below the buffers, so they see large pieces rather than one event header at a time.
            var streams = new List<ChecksummingStream>(inputs.Count);
            var buffered = new List<Stream>(inputs.Count);
            await using var output = new WriteBehindStream(target, StreamingCopy.BufferSize);
            try
            {
                foreach (var input in inputs)
                {
                    streams.Add(new ChecksummingStream(await inputArea.OpenReadAsync(input.Name, token)));
                    buffered.Add(new BufferedStream(streams[^1], InputBufferSize));
                }
                events = await EventMerge.MergeAsync(buffered, output, ranges, token);
                await output.FlushAsync(token);
                for (var i = 0; i < inputs.Count; i++)
                {
                    if (streams[i].Length != inputs[i].Size || !Adler32Checksum.Same(Adler32Checksum.Format(streams[i].Adler32), inputs[i].Adler32))
                    {
                        throw new InvalidDataException($"Input {inputs[i].Name} does not match its reported size and checksum.");
                    }
                }
                var expected = inputs.Sum(i => i.Events);
                if (events != expected)
                {
                    throw new InvalidDataException($"Merging {inputs.Count} inputs gave {events} events, expected {expected}.");
                }
            }
            finally
            {
                foreach (var stream in buffered)
                {
                    await stream.DisposeAsync();
                }
            }
        }, cancellationToken);
        return (size, adler, events);
    }
}
