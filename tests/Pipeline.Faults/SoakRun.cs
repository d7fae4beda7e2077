using System.Globalization;
using System.Text;
using Pipeline.Production.State;
using RabbitMQ.Client;

namespace Pipeline.Faults;

/// <summary>One service's memory and open files over the soak, from /proc: after warm-up, and at the end.</summary>
public sealed record ProcessTrend(string Service, double WarmMb, double EndMb, double GrowthPercent, int WarmFiles, int EndFiles);

/// <summary>The soak's result; its JSON is `make soak`'s last line.</summary>
public sealed record SoakReport(
    double Minutes,
    int Runs,
    int Files,
    int NonFinal,
    int Poisoned,
    double MaxMemoryGrowthPercent,
    int MaxFileDescriptorGrowth,
    bool QueuesDrained,
    IReadOnlyDictionary<string, long> ErrorQueues,
    IReadOnlyList<ProcessTrend> Processes,
    double AllowedGrowthPercent,
    [property: System.Text.Json.Serialization.JsonIgnore] IReadOnlyList<string> Problems)
{
    public bool Passed => NonFinal == 0 && QueuesDrained && MaxMemoryGrowthPercent < AllowedGrowthPercent && MaxFileDescriptorGrowth <= 16 && Problems.Count == 0
        && ErrorQueues.Sum(q => q.Value) == Poisoned && ErrorQueues.GetValueOrDefault("run-events_error") == Poisoned;
}

/// <summary>
/// `make soak`: the services as processes take a new run every few seconds for a bounded time, a few deliberately
/// poisoned run events among them. Memory (RSS) and open file descriptors of every service are sampled from /proc;
/// at the end every file must be final, every queue drained, and the error queues must hold the poisoned messages
/// and nothing else. Memory is compared between the end of warm-up (the first third) and the last fifth.
/// </summary>
/// <param name="allowedGrowthPercent">
/// 15 for `make soak`. A run of a few minutes is mostly warm-up (the server GC grows its heaps for a while), so
/// its bound only catches a gross leak.
/// </param>
public sealed class SoakRun(TimeSpan duration, TimeSpan runEvery, int filesPerRun, int poisoned, int brokerPort, TextWriter log, double allowedGrowthPercent = 15)
{
    public async Task<SoakReport> RunAsync(CancellationToken cancellationToken)
    {
        var problems = new List<string>();
        await using var pipeline = await ProcessPipeline.StartAsync(null, brokerPort, log, _ => null, releaseSleepMsMax: 100, cancellationToken);
        await PoisonAsync(pipeline.Broker.Uri, poisoned, cancellationToken);
        using var store = StoreBackend.Sqlite(Path.Combine(pipeline.Data, "pipeline.db"));

        var samples = new List<(TimeSpan At, string Service, double RssMb, int Files)>();
        var started = DateTime.UtcNow;
        var nextRun = started;
        var runs = 0;
        var files = 0;
        var nextSample = started;
        while (DateTime.UtcNow - started < duration)
        {
            if (DateTime.UtcNow >= nextRun)
            {
                var batch = await pipeline.GenerateAsync(filesPerRun, seed: runs + 1, firstRun: 1000 + runs);
                await pipeline.AnnounceAsync([.. batch.Take(1)], cancellationToken);
                files += batch[0].Files!.Count;
                runs++;
                nextRun += runEvery;
            }
            if (DateTime.UtcNow >= nextSample)
            {
                foreach (var process in pipeline.Processes.Values)
                {
                    if (!process.Running)
                    {
                        problems.Add($"{process.Name} exited by itself; see {process.LogPath}");
                        await process.StartAsync(cancellationToken);
                        continue;
                    }
                    samples.Add((DateTime.UtcNow - started, process.Name, RssMb(process.ProcessId), OpenFiles(process.ProcessId)));
                }
                nextSample += TimeSpan.FromSeconds(Math.Max(1, duration.TotalSeconds / 120));
            }
            await Task.Delay(200, cancellationToken);
        }
        log.WriteLine($"soak: {runs} runs of {filesPerRun} files announced over {duration.TotalMinutes:F1} min; waiting for them to finish");

        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(5);
        var final = 0;
        while ((final = (await ProcessPipeline.ProgressAsync(store.Sagas, cancellationToken)).Final) < files && DateTime.UtcNow < deadline)
        {
            await Task.Delay(500, cancellationToken);
        }
        // Drained: nothing ready in any queue but the error queues, looked at until it holds (acknowledgements trail the work).
        IReadOnlyDictionary<string, long> depths;
        do
        {
            depths = await pipeline.Broker.QueueDepthsAsync(cancellationToken);
            if (depths.Where(q => !q.Key.EndsWith("_error", StringComparison.Ordinal)).All(q => q.Value == 0))
            {
                break;
            }
            await Task.Delay(500, cancellationToken);
        }
        while (DateTime.UtcNow < deadline);
        var drained = depths.Where(q => !q.Key.EndsWith("_error", StringComparison.Ordinal)).All(q => q.Value == 0);
        var errorQueues = depths.Where(q => q.Key.EndsWith("_error", StringComparison.Ordinal) && q.Value > 0).ToDictionary(q => q.Key, q => q.Value, StringComparer.Ordinal);

        var trends = new List<ProcessTrend>();
        foreach (var service in samples.GroupBy(s => s.Service))
        {
            var warm = service.Where(s => s.At >= duration / 5 && s.At < duration / 3).ToList();
            var end = service.Where(s => s.At >= duration * 0.8).ToList();
            if (warm.Count == 0 || end.Count == 0)
            {
                continue;
            }
            double Median(IEnumerable<double> values) => values.Order().ElementAt(values.Count() / 2);
            var warmMb = Median(warm.Select(s => s.RssMb));
            var endMb = Median(end.Select(s => s.RssMb));
            trends.Add(new ProcessTrend(service.Key, Math.Round(warmMb, 1), Math.Round(endMb, 1), Math.Round(100 * (endMb - warmMb) / warmMb, 1),
                (int)Median(warm.Select(s => (double)s.Files)), (int)Median(end.Select(s => (double)s.Files))));
        }
        await pipeline.StopAllAsync();
        var report = new SoakReport(Math.Round(duration.TotalMinutes, 1), runs, files, files - final, poisoned,
            trends.Count == 0 ? 0 : trends.Max(t => t.GrowthPercent), trends.Count == 0 ? 0 : trends.Max(t => t.EndFiles - t.WarmFiles),
            drained, errorQueues, trends, allowedGrowthPercent, problems);
        pipeline.KeepWork = !report.Passed;
        return report;
    }

    /// <summary>Run events that must be refused: they go to the error queue once each, and nowhere else.</summary>
    private static async Task PoisonAsync(Uri broker, int count, CancellationToken cancellationToken)
    {
        var factory = new ConnectionFactory { Uri = broker };
        await using var connection = await factory.CreateConnectionAsync(cancellationToken);
        await using var channel = await connection.CreateChannelAsync(new CreateChannelOptions(publisherConfirmationsEnabled: true, publisherConfirmationTrackingEnabled: true), cancellationToken);
        for (var i = 0; i < count; i++)
        {
            await channel.BasicPublishAsync("run-events", "", mandatory: true,
                new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent },
                Encoding.UTF8.GetBytes($"{{\"run\": -{i + 1}, \"files\": []}}"), cancellationToken);
        }
    }

    private static double RssMb(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
            }
        }
        return 0;
    }

    private static int OpenFiles(int pid) => Directory.EnumerateFileSystemEntries($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/fd").Count();
}
