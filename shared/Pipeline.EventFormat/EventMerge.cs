namespace Pipeline.EventFormat;

/// <summary>
/// Merges event files that are each in (run, section, event) order into one file in that order:
/// a k-way merge holding one event per input, so memory does not grow with the data.
/// </summary>
public static class EventMerge
{
    public static Task<long> MergeAsync(IReadOnlyList<Stream> inputs, Stream output, CancellationToken cancellationToken = default) =>
        MergeAsync(inputs, output, null, cancellationToken);

    /// <param name="ranges">When given (one per input), receives each input's first and last event and its count, as they pass.</param>
    public static async Task<long> MergeAsync(IReadOnlyList<Stream> inputs, Stream output, EventRange[]? ranges, CancellationToken cancellationToken = default)
    {
        if (ranges is not null && ranges.Length != inputs.Count)
        {
            throw new ArgumentException($"{ranges.Length} ranges for {inputs.Count} inputs.", nameof(ranges));
        }
        var readers = new List<EventReader>(inputs.Count);
        try
        {
            foreach (var input in inputs)
            {
                readers.Add(await EventReader.OpenAsync(input, leaveOpen: true, cancellationToken));
            }
            var queue = new PriorityQueue<int, (EventKey Key, int Input)>(readers.Count, KeyOrder.Instance);
            for (var i = 0; i < readers.Count; i++)
            {
                if (await readers[i].ReadAsync(cancellationToken))
                {
                    queue.Enqueue(i, (readers[i].Current.Key, i));
                }
            }
            await using var writer = await EventWriter.CreateAsync(output, leaveOpen: true, cancellationToken);
            var previous = (EventKey?)null;
            while (queue.TryDequeue(out var index, out _))
            {
                var reader = readers[index];
                var record = reader.Current;
                if (previous is { } last && record.Key < last)
                {
                    throw new EventFormatException($"Input {index} is not in (run, section, event) order at {record.Key}.");
                }
                previous = record.Key;
                if (ranges is not null)
                {
                    ranges[index] = ranges[index].Count == 0 ? new EventRange(record.Key, record.Key, 1) : ranges[index] with { Last = record.Key, Count = ranges[index].Count + 1 };
                }
                await writer.WriteAsync(record, cancellationToken);
                if (await reader.ReadAsync(cancellationToken))
                {
                    queue.Enqueue(index, (reader.Current.Key, index));
                }
            }
            return writer.Events;
        }
        finally
        {
            foreach (var reader in readers)
            {
                await reader.DisposeAsync();
            }
        }
    }

    private sealed class KeyOrder : IComparer<(EventKey Key, int Input)>
    {
        public static readonly KeyOrder Instance = new();

        // Ties (the same event in two inputs) keep input order, so the merge is deterministic.
        public int Compare((EventKey Key, int Input) x, (EventKey Key, int Input) y)
        {
            var byKey = x.Key.CompareTo(y.Key);
            return byKey != 0 ? byKey : x.Input.CompareTo(y.Input);
        }
    }
}

/// <summary>The events one input contributed to a merge: the first and last (in merge order) and how many.</summary>
public readonly record struct EventRange(EventKey First, EventKey Last, long Count);
