using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.Orchestrator;
using Pipeline.Reconstruction;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;
using RabbitMQ.Client;

namespace Pipeline.Tests.EndToEnd;

[Collection(RabbitMqCollection.Name)]
public sealed class When_runs_flow_through_every_stage_on_rabbitmq(RabbitMqBroker broker)
{
    [Fact]
    public async Task Should_archive_every_selected_event_exactly_once_with_verified_checksums()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync());
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 4, EventsPerFile: 200));
        await pipeline.IngestAsync(runs);
        var files = runs.Sum(r => r.Files!.Count);
        Assert.Equal(16, files);

        await pipeline.WaitForFinalAsync(files);
        var audit = await pipeline.AuditAsync(runs);

        Assert.Equal(files, audit.ArchivedRawFiles);
        Assert.Equal(0, audit.FailedRawFiles);
        Assert.NotEmpty(audit.Events!.Datasets);
        foreach (var (dataset, counts) in audit.Events!.Datasets)
        {
            Assert.True(counts.Expected > 0, $"dataset {dataset} selected no event");
            Assert.Equal(counts.Expected, counts.Archived);
            Assert.Equal(0, counts.Lost);
            Assert.Equal(0, counts.Duplicated);
            Assert.Equal(0, counts.Unexpected);
        }
        Assert.True(audit.MergedFiles > 0);
        Assert.Equal(audit.MergedFiles, audit.Events!.ChecksumsVerified);
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Single(f.History, h => h.Event == "FileReconstructed"));
    }

    [Fact]
    public async Task Should_process_a_run_published_twice_once()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync());
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);
        await pipeline.IngestAsync(runs);
        var files = runs[0].Files!.Count;

        await pipeline.WaitForFinalAsync(files);
        var audit = await pipeline.AuditAsync(runs);

        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        var sagas = await pipeline.AllFilesAsync();
        Assert.Equal(files, sagas.Count);
        Assert.All(sagas, f => Assert.Equal(1, f.Attempt));
    }
}

[Collection(RabbitMqCollection.Name)]
public sealed class When_the_data_acquisition_system_publishes_plain_json(RabbitMqBroker broker)
{
    private static async Task PublishRaw(Uri uri, string json)
    {
        await using var connection = await RabbitMqBroker.Connect(uri);
        await using var channel = await connection.CreateChannelAsync();
        var properties = new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent };
        await channel.BasicPublishAsync(RunRecordedConsumerDefinition.QueueName, "", mandatory: true, properties, Encoding.UTF8.GetBytes(json));
    }

    [Fact]
    public async Task Should_register_a_run_event_sent_without_masstransit()
    {
        var uri = await broker.IsolatedUriAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(uri);
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 30)))[0];

        await PublishRaw(uri, JsonSerializer.Serialize(run, ReleaseManifest.Json));

        await pipeline.WaitForFinalAsync(run.Files!.Count);
        Assert.True((await pipeline.AuditAsync([run])).Complete);
    }

    [Fact]
    public async Task Should_move_an_invalid_run_event_to_the_error_queue_with_its_reason_and_register_nothing()
    {
        var uri = await broker.IsolatedUriAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(uri);
        const string invalid = """{"run":1000,"files":[{"name":"../../etc/passwd","stream":"physics","section":1,"size":-5,"adler32":"nothex!!","events":1}]}""";

        await PublishRaw(uri, invalid);

        await using var connection = await RabbitMqBroker.Connect(uri);
        async Task<BasicGetResult?> TakeFromErrorQueue()
        {
            // The error queue appears with its first message; asking for a queue that is not there closes the channel.
            await using var channel = await connection.CreateChannelAsync();
            try
            {
                return await channel.BasicGetAsync(RunRecordedConsumerDefinition.QueueName + "_error", autoAck: true);
            }
            catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
            {
                return null;
            }
        }
        var faulted = await Eventually.Until(
            TakeFromErrorQueue,
            message => message is not null,
            TimeSpan.FromSeconds(60),
            "the invalid run event in the error queue");
        var reason = Encoding.UTF8.GetString((byte[])faulted!.BasicProperties.Headers!["MT-Fault-Message"]!);
        Assert.Contains("files[0].name", reason, StringComparison.Ordinal);
        Assert.Contains("files[0].size", reason, StringComparison.Ordinal);
        Assert.Contains("files[0].adler32", reason, StringComparison.Ordinal);
        Assert.Equal(invalid, Encoding.UTF8.GetString(faulted.Body.Span));
        Assert.Empty(await pipeline.AllFilesAsync());
    }
}

[Collection(RabbitMqCollection.Name)]
public sealed class When_a_reconstruction_worker_crashes_mid_job(RabbitMqBroker broker)
{
    /// <summary>Starts the real release, then dies before it reports, the first time it sees each chosen file.</summary>
    private sealed class CrashingOnce(IReleaseRunner real, ISet<string> crashFor) : IReleaseRunner
    {
        public int Crashes { get; private set; }

        public async Task<ReleaseOutcome> RunAsync(ReleaseJob job, CancellationToken cancellationToken)
        {
            var outcome = await real.RunAsync(job, cancellationToken);
            var input = job.Arguments.SkipWhile(a => a != "--input").Skip(1).First();
            lock (crashFor)
            {
                if (crashFor.Remove(Path.GetFileName(input)))
                {
                    Crashes++;
                    throw new IOException("worker lost its disk mid-job");
                }
            }
            return outcome;
        }
    }

    [Fact]
    public async Task Should_lose_nothing_and_complete_each_file_once()
    {
        var crashFor = new HashSet<string>(StringComparer.Ordinal);
        CrashingOnce? runner = null;
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), overrideServices: services =>
            services.AddSingleton<IReleaseRunner>(_ => runner = new CrashingOnce(new ProcessReleaseRunner(), crashFor)));
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 100));
        foreach (var file in runs[0].Files!.Take(2))
        {
            crashFor.Add(Path.GetFileName(file.Name!));
        }

        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(runs[0].Files!.Count);

        Assert.Equal(2, runner!.Crashes);
        var audit = await pipeline.AuditAsync(runs);
        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Single(f.History, h => h.Event == "FileReconstructed"));
    }
}
