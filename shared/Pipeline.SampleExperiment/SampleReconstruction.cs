using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.EventFormat;

namespace Pipeline.SampleExperiment;

/// <summary>
/// The sample reconstruction: reads a raw file, "reconstructs" each event (a deterministic transform
/// of its payload), and writes it to every dataset whose trigger mask it matches.
/// </summary>
public static class SampleReconstruction
{
    public static async Task<IReadOnlyList<ReleaseOutput>> RunAsync(
        string input,
        string outputDirectory,
        IReadOnlyList<DatasetSelection> datasets,
        string? histogramsPath,
        double cpuMillisecondsPerEvent,
        TextWriter log,
        CancellationToken cancellationToken = default)
    {
        Directory.CreateDirectory(outputDirectory);
        var writers = new Dictionary<string, EventWriter>(StringComparer.Ordinal);
        var triggerCounts = new long[32];
        long events = 0;
        var started = Stopwatch.StartNew();
        try
        {
            await using var reader = await EventReader.OpenAsync(File.OpenRead(input), cancellationToken: cancellationToken);
            var reconstructed = new byte[EventFile.MaxPayload];
            while (await reader.ReadAsync(cancellationToken))
            {
                var record = reader.Current;
                events++;
                for (var bit = 0; bit < 32; bit++)
                {
                    if ((record.Trigger & (1u << bit)) != 0)
                    {
                        triggerCounts[bit]++;
                    }
                }
                BurnCpu(cpuMillisecondsPerEvent);
                var length = record.Payload.Length / 2;
                var source = record.Payload.Span;
                for (var i = 0; i < length; i++)
                {
                    reconstructed[i] = (byte)(source[i] ^ 0x5A);
                }
                var output = record with { Payload = reconstructed.AsMemory(0, length) };
                foreach (var (name, mask) in datasets.Select(d => (d.Name, d.TriggerMask)))
                {
                    if ((record.Trigger & mask) == 0)
                    {
                        continue;
                    }
                    if (!writers.TryGetValue(name, out var writer))
                    {
                        writer = await EventWriter.CreateAsync(File.Create(Path.Combine(outputDirectory, name + ".evt")), cancellationToken: cancellationToken);
                        writers[name] = writer;
                    }
                    await writer.WriteAsync(output, cancellationToken);
                }
            }
        }
        finally
        {
            foreach (var writer in writers.Values)
            {
                await writer.DisposeAsync();
            }
        }

        var manifest = writers.OrderBy(w => w.Key, StringComparer.Ordinal)
            .Select(w => new ReleaseOutput(w.Key, w.Key + ".evt", w.Value.Events))
            .ToList();
        await File.WriteAllTextAsync(Path.Combine(outputDirectory, ReleaseManifest.FileName), JsonSerializer.Serialize(manifest, ReleaseManifest.Json), cancellationToken);
        if (histogramsPath is not null)
        {
            var histograms = new
            {
                input = Path.GetFileName(input),
                events,
                triggerBits = triggerCounts.Take(8).ToArray(),
                datasets = manifest.ToDictionary(m => m.Dataset, m => m.Events),
            };
            await File.WriteAllTextAsync(histogramsPath, JsonSerializer.Serialize(histograms, ReleaseManifest.Json), cancellationToken);
        }
        var perDataset = string.Join(", ", manifest.Select(m => string.Create(CultureInfo.InvariantCulture, $"{m.Dataset}={m.Events}")));
        await log.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
            $"reconstructed {events} events from {Path.GetFileName(input)} in {started.Elapsed.TotalSeconds:F2}s: {perDataset}"));
        return manifest;
    }

    private static void BurnCpu(double milliseconds)
    {
        if (milliseconds <= 0)
        {
            return;
        }
        var until = Stopwatch.GetTimestamp() + (long)(milliseconds * Stopwatch.Frequency / 1000);
        var x = 1.0;
        while (Stopwatch.GetTimestamp() < until)
        {
            x = Math.Sqrt(x + 1.0);
        }
        GC.KeepAlive(x);
    }
}
