using Pipeline.EventFormat;

namespace Pipeline.Tests.EventFormat;

public class When_writing_and_reading_event_files
{
    [Fact]
    public async Task Should_read_back_every_event_as_written()
    {
        var written = Enumerable.Range(1, 200)
            .Select(i => new EventRecord(1000, i / 50, i, (uint)i * 7, Enumerable.Repeat((byte)i, i % 17).ToArray()))
            .ToList();
        using var file = new MemoryStream();
        await using (var writer = await EventWriter.CreateAsync(file, leaveOpen: true))
        {
            foreach (var record in written)
            {
                await writer.WriteAsync(record);
            }
        }
        file.Position = 0;

        var read = new List<(EventKey, uint, byte[])>();
        await using (var reader = await EventReader.OpenAsync(file, leaveOpen: true))
        {
            await foreach (var record in reader.ReadAllAsync())
            {
                read.Add((record.Key, record.Trigger, record.Payload.ToArray()));
            }
        }

        Assert.Equal(written.Select(r => (r.Key, r.Trigger, r.Payload.ToArray())), read);
    }

    [Fact]
    public async Task Should_refuse_a_file_without_the_magic()
    {
        await Assert.ThrowsAsync<EventFormatException>(() => EventReader.OpenAsync(new MemoryStream("not events"u8.ToArray())));
    }

    [Fact]
    public async Task Should_report_a_file_cut_short()
    {
        using var file = new MemoryStream();
        await using (var writer = await EventWriter.CreateAsync(file, leaveOpen: true))
        {
            await writer.WriteAsync(new EventRecord(1, 1, 1, 1, new byte[100]));
        }
        var truncated = new MemoryStream(file.ToArray()[..^10]);
        await using var reader = await EventReader.OpenAsync(truncated);
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await reader.ReadAsync());
    }
}

public class When_merging_event_files
{
    private static async Task<MemoryStream> File(params (int Run, int Section, long Event)[] keys)
    {
        var stream = new MemoryStream();
        await using (var writer = await EventWriter.CreateAsync(stream, leaveOpen: true))
        {
            foreach (var (run, section, number) in keys)
            {
                await writer.WriteAsync(new EventRecord(run, section, number, 1, BitConverter.GetBytes(number)));
            }
        }
        stream.Position = 0;
        return stream;
    }

    [Fact]
    public async Task Should_order_events_by_run_then_section_then_number()
    {
        var inputs = new List<Stream>
        {
            await File((2, 1, 10), (2, 2, 30)),
            await File((1, 5, 7), (2, 1, 11), (3, 1, 1)),
            await File((1, 1, 1), (1, 1, 2), (2, 2, 29)),
        };
        using var output = new MemoryStream();
        var ranges = new EventRange[inputs.Count];

        var count = await EventMerge.MergeAsync(inputs, output, ranges);

        output.Position = 0;
        var keys = new List<EventKey>();
        await using (var reader = await EventReader.OpenAsync(output, leaveOpen: true))
        {
            await foreach (var record in reader.ReadAllAsync())
            {
                keys.Add(record.Key);
                Assert.Equal(record.Event, BitConverter.ToInt64(record.Payload.Span));
            }
        }
        Assert.Equal(8, count);
        Assert.Equal(keys.Order().ToList(), keys);
        Assert.Equal(new EventKey(1, 1, 1), keys[0]);
        Assert.Equal(new EventKey(3, 1, 1), keys[^1]);
        // What each input gave the merged file, for its manifest.
        Assert.Equal(
            [new EventRange(new(2, 1, 10), new(2, 2, 30), 2), new EventRange(new(1, 5, 7), new(3, 1, 1), 3), new EventRange(new(1, 1, 1), new(2, 2, 29), 3)],
            ranges);
    }

    [Fact]
    public async Task Should_refuse_an_input_that_is_not_in_order()
    {
        var inputs = new List<Stream> { await File((2, 1, 1), (1, 1, 1)) };
        await Assert.ThrowsAsync<EventFormatException>(() => EventMerge.MergeAsync(inputs, new MemoryStream()));
    }

    [Fact]
    public async Task Should_make_a_valid_empty_file_from_empty_inputs()
    {
        using var output = new MemoryStream();
        Assert.Equal(0, await EventMerge.MergeAsync([await File()], output));
        output.Position = 0;
        await using var reader = await EventReader.OpenAsync(output);
        Assert.False(await reader.ReadAsync());
    }
}
