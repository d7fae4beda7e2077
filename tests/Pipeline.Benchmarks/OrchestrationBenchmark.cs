using System.Diagnostics;
using System.Globalization;
using MassTransit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.EventFormat;
using Pipeline.Host;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Benchmarks.Chain
{
    public sealed record ChainA(int Number);

    public sealed record ChainB(int Number);
}

namespace Pipeline.Benchmarks
{
    using Pipeline.Benchmarks.Chain;

    /// <summary>
    /// Small files through every stage on real RabbitMQ and the embedded store, with a reconstruction
    /// that passes its input through in-process; against a bare MassTransit chain (consume A, publish B,
    /// consume B) on the same broker, in the same run.
    /// </summary>
    public static class OrchestrationBenchmark
    {
        public static async Task<object> RunAsync(Uri broker, string workDirectory, int files)
        {
            var chainMsgsPerSec = await ChainAsync(broker, 20_000);

            var counter = new ConsumedCounter();
            var settings = new Dictionary<string, string?>
            {
                ["urls"] = "http://127.0.0.1:0",
                ["Pipeline:DataDirectory"] = workDirectory,
                ["Pipeline:Transport"] = "RabbitMq",
                ["Pipeline:RabbitMq:Uri"] = broker.ToString(),
                ["Pipeline:Campaign:Datasets:all"] = uint.MaxValue.ToString(CultureInfo.InvariantCulture),
                ["Pipeline:Campaign:Release:Executable"] = "pass-through",
                ["Pipeline:Campaign:Release:Arguments:0"] = "{input}",
                ["Pipeline:Campaign:Release:Arguments:1"] = "{outdir}",
                ["Pipeline:Campaign:MergeTargetBytes"] = (8 << 20).ToString(CultureInfo.InvariantCulture),
                ["Pipeline:Merger:FlushIdleSeconds"] = "0.2",
                ["Pipeline:Merger:PollSeconds"] = "0.05",
                ["Pipeline:Reconstruction:Slots"] = "16",
                ["Serilog:MinimumLevel:Default"] = "Warning",
                ["Pipeline:Sqlite:Durability"] = Environment.GetEnvironmentVariable("BENCH_SQLITE_DURABILITY") ?? "Full",
                // Strict ordering holds merges back until whole runs are reconstructed: a production policy, not
                // orchestration overhead. BENCH_ORDERING=Strict measures with it.
                ["Pipeline:Flow:DefaultOrdering"] = Environment.GetEnvironmentVariable("BENCH_ORDERING") ?? "Relaxed",
            };
            var app = PipelineApp.Build([], settings, services =>
            {
                services.AddSingleton<IReleaseRunner, PassThroughRelease>();
                services.AddSingleton(counter);
                services.AddConsumeObserver(_ => counter);
            });
            await app.StartAsync();
            try
            {
                var (filesPerSec, messagesPerFile) = await ThroughputAsync(app, counter, files);
                var latencies = await LatencyAsync(app, 20);
                return new
                {
                    filesPerSec = Math.Round(filesPerSec, 1),
                    messagesPerFile = Math.Round(messagesPerFile, 1),
                    chainMsgsPerSec = Math.Round(chainMsgsPerSec),
                    ratio = Math.Round(filesPerSec * messagesPerFile / chainMsgsPerSec, 2),
                    latencyP50Ms = Math.Round(Percentile(latencies, 0.50)),
                    latencyP95Ms = Math.Round(Percentile(latencies, 0.95)),
                    files,
                };
            }
            finally
            {
                await app.StopAsync();
                await app.DisposeAsync();
            }
        }

        private static async Task<(double FilesPerSec, double MessagesPerFile)> ThroughputAsync(WebApplication app, ConsumedCounter counter, int files)
        {
            var areas = app.Services.GetRequiredService<StorageAreas>();
            var streams = 2;
            var filesPerRun = 100;
            var runs = await SampleGenerator.GenerateAsync(areas.Archive.RootPath,
                new SampleSpec(Runs: Math.Max(1, files / filesPerRun), FilesPerStream: filesPerRun / streams, EventsPerFile: 10, PayloadBytes: 64, Seed: 5));
            var total = runs.Sum(r => r.Files!.Count);
            var ingestion = app.Services.GetRequiredService<RunIngestion>();
            var bus = app.Services.GetRequiredService<IBus>();
            var sagas = app.Services.GetRequiredService<IFileSagaStore>();

            var consumedBefore = counter.Consumed;
            var watch = Stopwatch.StartNew();
            foreach (var run in runs)
            {
                await ingestion.IngestAsync(run, bus, CancellationToken.None);
            }
            var samples = new List<(double Seconds, long Final)>();
            while (true)
            {
                var final = (await sagas.CountByStateAsync(CancellationToken.None)).Where(c => c.State == "Archived").Sum(c => c.Files);
                samples.Add((watch.Elapsed.TotalSeconds, final));
                if (final >= total)
                {
                    break;
                }
                if (watch.Elapsed > TimeSpan.FromMinutes(8))
                {
                    throw new TimeoutException($"only {final} of {total} files archived in 8 minutes");
                }
                await Task.Delay(250);
            }
            // Let the last merges' reports drain before counting messages.
            await Task.Delay(1000);
            var messagesPerFile = (counter.Consumed - consumedBefore) / (double)total;
            // Steady state: between 10% and 90% of the files done.
            var from = samples.First(s => s.Final >= total * 0.1);
            var to = samples.First(s => s.Final >= total * 0.9);
            var filesPerSec = to.Seconds > from.Seconds ? (to.Final - from.Final) / (to.Seconds - from.Seconds) : total / watch.Elapsed.TotalSeconds;
            return (filesPerSec, messagesPerFile);
        }

        private static async Task<List<double>> LatencyAsync(WebApplication app, int samples)
        {
            var areas = app.Services.GetRequiredService<StorageAreas>();
            var ingestion = app.Services.GetRequiredService<RunIngestion>();
            var bus = app.Services.GetRequiredService<IBus>();
            var sagas = app.Services.GetRequiredService<IFileSagaStore>();
            var latencies = new List<double>();
            for (var i = 0; i < samples; i++)
            {
                var run = (await SampleGenerator.GenerateAsync(areas.Archive.RootPath,
                    new SampleSpec(Runs: 1, FirstRun: 900_000 + i, Streams: ["physics"], FilesPerStream: 1, EventsPerFile: 10, PayloadBytes: 64)))[0];
                var watch = Stopwatch.StartNew();
                var result = await ingestion.IngestAsync(run, bus, CancellationToken.None);
                while ((await sagas.LoadAsync(result.FileIds[0], CancellationToken.None))?.CurrentState != "Archived")
                {
                    if (watch.Elapsed > TimeSpan.FromMinutes(1))
                    {
                        throw new TimeoutException("a one-file run did not finish within a minute");
                    }
                    await Task.Delay(5);
                }
                latencies.Add(watch.Elapsed.TotalMilliseconds);
            }
            return latencies;
        }

        private static double Percentile(List<double> values, double p)
        {
            var sorted = values.Order().ToList();
            return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(p * sorted.Count) - 1)];
        }

        private static async Task<double> ChainAsync(Uri broker, int chains)
        {
            var done = new ChainCounter(chains);
            var services = new ServiceCollection();
            services.AddLogging();
            services.AddSingleton(done);
            services.AddMassTransit(x =>
            {
                x.AddConsumer<ChainAConsumer>();
                x.AddConsumer<ChainBConsumer>();
                x.UsingRabbitMq((context, rabbit) =>
                {
                    rabbit.Host(broker);
                    rabbit.PrefetchCount = 32;
                    rabbit.ConfigureEndpoints(context);
                });
            });
            services.AddOptions<MassTransitHostOptions>().Configure(o => o.WaitUntilStarted = true);
            await using var provider = services.BuildServiceProvider();
            var control = provider.GetRequiredService<IBusControl>();
            await control.StartAsync();
            try
            {
                var watch = Stopwatch.StartNew();
                for (var start = 0; start < chains; start += 500)
                {
                    await Task.WhenAll(Enumerable.Range(start, Math.Min(500, chains - start)).Select(n => control.Publish(new ChainA(n))));
                }
                await done.Completed.WaitAsync(TimeSpan.FromMinutes(5));
                return 2.0 * chains / watch.Elapsed.TotalSeconds;
            }
            finally
            {
                await control.StopAsync();
            }
        }

        private sealed class ChainCounter(int expected)
        {
            private int _seen;
            private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);

            public Task Completed => _completed.Task;

            public void Seen()
            {
                if (Interlocked.Increment(ref _seen) == expected)
                {
                    _completed.SetResult();
                }
            }
        }

        private sealed class ChainAConsumer : IConsumer<ChainA>
        {
            public Task Consume(ConsumeContext<ChainA> context) => context.Publish(new ChainB(context.Message.Number));
        }

        private sealed class ChainBConsumer(ChainCounter counter) : IConsumer<ChainB>
        {
            public Task Consume(ConsumeContext<ChainB> context)
            {
                counter.Seen();
                return Task.CompletedTask;
            }
        }
    }

    /// <summary>Counts every message any consumer or saga of the pipeline consumed.</summary>
    public sealed class ConsumedCounter : IConsumeObserver
    {
        private long _consumed;

        public long Consumed => Interlocked.Read(ref _consumed);

        public Task PreConsume<T>(ConsumeContext<T> context) where T : class => Task.CompletedTask;

        public Task PostConsume<T>(ConsumeContext<T> context) where T : class
        {
            Interlocked.Increment(ref _consumed);
            return Task.CompletedTask;
        }

        public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception) where T : class => Task.CompletedTask;
    }

    /// <summary>A release that does no physics: copies every event of its input into one dataset, in-process.</summary>
    public sealed class PassThroughRelease : IReleaseRunner
    {
        public async Task<ReleaseOutcome> RunAsync(ReleaseJob job, CancellationToken cancellationToken)
        {
            var (input, outdir) = (job.Arguments[0], job.Arguments[1]);
            long events;
            await using (var reader = await EventReader.OpenAsync(File.OpenRead(input), cancellationToken: cancellationToken))
            await using (var writer = await EventWriter.CreateAsync(File.Create(Path.Combine(outdir, "all.evt")), cancellationToken: cancellationToken))
            {
                while (await reader.ReadAsync(cancellationToken))
                {
                    await writer.WriteAsync(reader.Current, cancellationToken);
                }
                events = writer.Events;
            }
            await File.WriteAllTextAsync(Path.Combine(outdir, ReleaseManifest.FileName),
                $$"""[{"dataset":"all","file":"all.evt","events":{{events}}}]""", cancellationToken);
            await File.WriteAllTextAsync(job.LogPath, $"passed {events} events through\n", cancellationToken);
            return new ReleaseOutcome(0, false, "", null);
        }
    }
}
