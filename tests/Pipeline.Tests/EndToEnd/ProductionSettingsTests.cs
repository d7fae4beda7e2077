using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Orchestrator;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;
using RabbitMQ.Client.Exceptions;

namespace Pipeline.Tests.EndToEnd;

/// <summary>The settings the container deployment runs with: quorum queues, and MongoDB as the state store.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class When_running_with_production_settings(RabbitMqBroker broker)
{
    private static async Task<bool> QueueIsOfType(Uri uri, string queue, string type)
    {
        await using var connection = await RabbitMqBroker.Connect(uri);
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            // Declaring an existing queue with another x-queue-type is refused (PRECONDITION_FAILED): a probe of its type.
            await channel.QueueDeclareAsync(queue, durable: true, exclusive: false, autoDelete: false,
                arguments: new Dictionary<string, object?> { ["x-queue-type"] = type });
            return true;
        }
        catch (OperationInterruptedException ex) when (ex.ShutdownReason?.ReplyCode == 406)
        {
            return false;
        }
    }

    [Fact]
    public async Task Should_declare_quorum_queues_and_still_archive_every_file()
    {
        var uri = await broker.IsolatedUriAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(uri, new Dictionary<string, string?> { ["Pipeline:RabbitMq:QuorumQueues"] = "true" });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 50));
        await pipeline.IngestAsync(runs);

        await pipeline.WaitForFinalAsync(runs[0].Files!.Count);
        var audit = await pipeline.AuditAsync(runs);

        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        foreach (var queue in new[] { FileStateDefinition.QueueName, ReconstructFileConsumerDefinition.QueueName })
        {
            Assert.False(await QueueIsOfType(uri, queue, "classic"), $"{queue} is a classic queue");
            Assert.True(await QueueIsOfType(uri, queue, "quorum"), $"{queue} is not a quorum queue");
        }
    }
}

/// <summary>The whole flow with every saga, run, catalog entry and merge buffer in MongoDB.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class When_state_lives_in_mongodb(RabbitMqBroker broker, MongoServer mongo) : IClassFixture<MongoServer>
{
    [SkippableFact]
    public async Task Should_archive_every_selected_event_exactly_once()
    {
        var connection = mongo.RequireUri();
        var database = "pipeline-flow-" + Guid.NewGuid().ToString("N")[..12];
        await using var pipeline = await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), new Dictionary<string, string?>
        {
            ["Pipeline:Store"] = "Mongo",
            ["Pipeline:Mongo:ConnectionString"] = connection,
            ["Pipeline:Mongo:Database"] = database,
        });
        await StoreFlow.ArchiveEveryEventOnceAsync(pipeline);
        await pipeline.Services.GetRequiredService<StoreBackend>().MongoContext!.DropAsync(CancellationToken.None);
    }
}

/// <summary>The whole flow with every saga, run, catalog entry and merge buffer in PostgreSQL.</summary>
[Collection(RabbitMqCollection.Name)]
public sealed class When_state_lives_in_postgres(RabbitMqBroker broker, PostgresServer postgres) : IClassFixture<PostgresServer>, IAsyncLifetime
{
    private string? _schema;

    public async Task InitializeAsync()
    {
        if (postgres.Unavailable is null)
        {
            _schema = await postgres.CreateSchemaAsync();
        }
    }

    public async Task DisposeAsync()
    {
        if (_schema is not null)
        {
            await postgres.DropSchemaAsync(_schema);
        }
    }

    private async Task<PipelineUnderTest> StartAsync()
    {
        var options = postgres.Options(_schema);
        return await PipelineUnderTest.StartAsync(await broker.IsolatedUriAsync(), new Dictionary<string, string?>
        {
            ["Pipeline:Store"] = "Postgres",
            ["Pipeline:Postgres:ConnectionString"] = options.ConnectionString,
            ["Pipeline:Postgres:PasswordFile"] = options.PasswordFile,
        });
    }

    [SkippableFact]
    public async Task Should_archive_every_selected_event_exactly_once()
    {
        postgres.Require();
        await using var pipeline = await StartAsync();
        await StoreFlow.ArchiveEveryEventOnceAsync(pipeline);
        Assert.NotNull(pipeline.Services.GetRequiredService<StoreBackend>().PostgresDatabase);
    }

    [SkippableFact]
    public async Task Should_lose_and_double_nothing_when_the_server_stops_while_files_flow_and_comes_back()
    {
        postgres.Require();
        await using var pipeline = await StartAsync();
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 3, EventsPerFile: 200));
        await pipeline.IngestAsync(runs);
        var files = runs.Sum(r => r.Files!.Count);
        // Stopped once some files are on their way and before all are done.
        await Eventually.Until(pipeline.AllFilesAsync, f => f.Any(s => s.CurrentState != FileStates.Registered) && f.Any(s => !FileStates.Final.Contains(s.CurrentState)),
            TimeSpan.FromSeconds(60), "files on their way", f => string.Join(", ", f.Select(s => s.CurrentState)));
        await postgres.StopAsync();
        // The process's readiness says so: the store is gone, and every message meanwhile retries or waits.
        var unready = await Eventually.Until(() => pipeline.Http.GetAsync(new Uri("health/ready", UriKind.Relative)),
            r => r.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable, TimeSpan.FromSeconds(30), "readiness false without the store", r => r.StatusCode.ToString());
        Assert.Contains("state store", await unready.Content.ReadAsStringAsync(), StringComparison.OrdinalIgnoreCase);
        await postgres.StartAgainAsync();

        await pipeline.WaitForFinalAsync(files);
        var audit = await pipeline.AuditAsync(runs);

        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal(FileStates.Archived, f.CurrentState));
    }
}

/// <summary>The flow every store backend must carry: two runs announced twice, each event archived once, each file reconstructed once.</summary>
internal static class StoreFlow
{
    public static async Task ArchiveEveryEventOnceAsync(PipelineUnderTest pipeline)
    {
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 2, EventsPerFile: 100));
        await pipeline.IngestAsync(runs);
        await pipeline.IngestAsync(runs);
        var files = runs.Sum(r => r.Files!.Count);

        await pipeline.WaitForFinalAsync(files);
        var audit = await pipeline.AuditAsync(runs);

        Assert.True(audit.Complete, JsonSerializer.Serialize(audit));
        Assert.Equal(audit.MergedFiles, audit.Events!.ChecksumsVerified);
        var sagas = await pipeline.AllFilesAsync();
        Assert.Equal(files, sagas.Count);
        Assert.All(sagas, f => Assert.Single(f.History, h => h.Event == "FileReconstructed"));
    }
}
