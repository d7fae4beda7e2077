using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using MassTransit;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.Production.Control;
using Pipeline.Orchestrator;
using Pipeline.Production.State;
using Pipeline.Tests.Support;
using RabbitMQ.Client;

namespace Pipeline.Tests.Api;

public sealed class When_the_health_watcher_looks_at_the_pipeline
{
    private static Dictionary<string, string?> Watching(Uri webhook, long minFreeBytes) => new()
    {
        ["Pipeline:HeartbeatSeconds"] = "1",
        ["Pipeline:Monitor:CheckIntervalSeconds"] = "0.2",
        ["Pipeline:Monitor:SilentAfterSeconds"] = "3",
        ["Pipeline:Monitor:MinFreeBytes"] = minFreeBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Pipeline:Monitor:MinFreePercent"] = "0",
        ["Pipeline:Monitor:Webhooks:0"] = webhook.ToString(),
    };

    [Fact]
    public async Task Should_list_live_instances_and_raise_and_resolve_a_silent_one_telling_the_webhook()
    {
        await using var webhook = await WebhookReceiver.StartAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: Watching(webhook.Address, minFreeBytes: 0));
        var bus = pipeline.Services.GetRequiredService<IBus>();

        var instances = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/instances")!, i => i!.Length > 0, TimeSpan.FromSeconds(30), "this instance's heartbeat");
        Assert.Contains("monitor", instances![0].GetProperty("services").GetString(), StringComparison.Ordinal);

        // An instance last heard a minute ago: silent.
        var now = DateTimeOffset.UtcNow;
        await bus.Publish(new InstanceHeartbeat("recon-on-node-7", "reconstruction", "node-7", now.AddHours(-1), now.AddMinutes(-1)));
        var raised = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts")!,
            alerts => alerts!.Any(a => a.GetProperty("key").GetString() == "instance-silent:recon-on-node-7"), TimeSpan.FromSeconds(30), "a silent-instance alert");
        Assert.Equal("critical", raised!.Single(a => a.GetProperty("key").GetString() == "instance-silent:recon-on-node-7").GetProperty("severity").GetString());

        // It speaks again: the alert is resolved, and the webhook was told both.
        await bus.Publish(new InstanceHeartbeat("recon-on-node-7", "reconstruction", "node-7", now.AddHours(-1), DateTimeOffset.UtcNow));
        await Eventually.Until(() => Task.FromResult(webhook.Received.ToArray()),
            notices => notices.Any(n => n.GetProperty("event").GetString() == "resolved" && n.GetProperty("alert").GetProperty("key").GetString() == "instance-silent:recon-on-node-7"),
            TimeSpan.FromSeconds(30), "the webhook to hear the alert resolved");
        Assert.Single(webhook.Received, n => n.GetProperty("event").GetString() == "raised" && n.GetProperty("alert").GetProperty("key").GetString() == "instance-silent:recon-on-node-7");
        var all = await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts?all=true");
        Assert.Contains(all!, a => a.GetProperty("key").GetString() == "instance-silent:recon-on-node-7" && a.GetProperty("resolvedAt").ValueKind == JsonValueKind.String);
        Assert.DoesNotContain(await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts") ?? [], a => a.GetProperty("key").GetString() == "instance-silent:recon-on-node-7");
    }

    [Fact]
    public async Task Should_ask_the_orchestrator_for_stuck_files_and_keep_the_alert_while_it_cannot_answer()
    {
        await using var webhook = await WebhookReceiver.StartAsync();
        var settings = Watching(webhook.Address, minFreeBytes: 0);
        settings["Pipeline:Monitor:StuckAfterSeconds"] = "1";
        settings["Pipeline:Orchestrator:WatchdogIntervalSeconds"] = "3600";
        OutageProxy<IFileSagaStore>? outage = null;
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: settings, overrideServices: services =>
            services.AddSingleton(sp =>
            {
                var (store, outageSwitch) = OutageProxy<IFileSagaStore>.Wrap(sp.GetRequiredService<StoreBackend>().Sagas);
                outage = outageSwitch;
                return store;
            }));
        // The watchdog would move the file on, whenever its pass runs: its next stage is paused first, and a file
        // waiting on a paused stage is not the watchdog's (the monitor's stuck-file check still sees it).
        await pipeline.Services.GetRequiredService<IControlStore>().PauseAsync("stager", "test", DateTimeOffset.UtcNow, CancellationToken.None);
        var pauses = pipeline.Services.GetRequiredService<PauseState>();
        await Eventually.Until(() => Task.FromResult(pauses.IsPaused("stager")), paused => paused, TimeSpan.FromSeconds(30), "the stager paused in this instance");
        var sagas = pipeline.Services.GetRequiredService<IFileSagaStore>();
        var id = Guid.NewGuid();
        await sagas.InsertAsync(new FileState
        {
            CorrelationId = id, CurrentState = FileStates.Staging, Campaign = "prompt", Run = 7, Stream = "physics", LogicalName = "raw/stuck.raw",
            UpdatedAt = DateTimeOffset.UtcNow.AddHours(-1), Deadline = DateTimeOffset.UtcNow.AddHours(-1),
        }, CancellationToken.None);

        var raised = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts")!,
            alerts => alerts!.Any(a => a.GetProperty("kind").GetString() == "files-stuck"), TimeSpan.FromSeconds(30), "a stuck-file alert");
        Assert.Contains($"{id} (Staging, run 7)", raised!.Single(a => a.GetProperty("kind").GetString() == "files-stuck").GetProperty("message").GetString(), StringComparison.Ordinal);

        // The orchestrator's store fails: the monitor says the orchestrator cannot answer, and does not take the
        // unanswered question for "nothing is stuck".
        outage!.Down = true;
        var unanswered = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts")!,
            alerts => alerts!.Any(a => a.GetProperty("kind").GetString() == "orchestrator-unanswered"), TimeSpan.FromSeconds(30), "an orchestrator-unanswered alert");
        Assert.Contains("store unreachable (test outage)", unanswered!.Single(a => a.GetProperty("kind").GetString() == "orchestrator-unanswered").GetProperty("message").GetString(), StringComparison.Ordinal);
        var refusedBefore = Volatile.Read(ref outage.Refused);
        await Eventually.Until(() => Task.FromResult(Volatile.Read(ref outage.Refused)), n => n >= refusedBefore + 2, TimeSpan.FromSeconds(30), "two more unanswered checks");
        Assert.Contains(await pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts") ?? [], a => a.GetProperty("kind").GetString() == "files-stuck");

        // Back, and the file has moved on: both alerts end.
        outage.Down = false;
        var saga = (await sagas.LoadAsync(id, CancellationToken.None))!;
        saga.CurrentState = FileStates.Archived;
        saga.Deadline = null;
        await sagas.UpdateAsync(saga, saga.Version, CancellationToken.None);
        await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts")!,
            alerts => !alerts!.Any(a => a.GetProperty("kind").GetString() is "files-stuck" or "orchestrator-unanswered"), TimeSpan.FromSeconds(30), "both alerts resolved");
    }

    [Fact]
    public async Task Should_raise_low_disk_for_every_area_below_its_limit()
    {
        await using var webhook = await WebhookReceiver.StartAsync();
        // No disk here has a petabyte free.
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: Watching(webhook.Address, minFreeBytes: 1L << 50));

        var alerts = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts")!,
            a => a!.Count(x => x.GetProperty("kind").GetString() == "disk-low") == 6, TimeSpan.FromSeconds(30), "low-disk alerts for the six areas");

        Assert.Equal(["archive", "cache", "logs", "output", "scratch", "unmerged"],
            alerts!.Where(a => a.GetProperty("kind").GetString() == "disk-low").Select(a => a.GetProperty("key").GetString()!.Split(':')[1]).Order(StringComparer.Ordinal));
        await Eventually.Until(() => Task.FromResult(webhook.Received.Count(n => n.GetProperty("alert").GetProperty("kind").GetString() == "disk-low")),
            count => count == 6, TimeSpan.FromSeconds(30), "six low-disk notices, one per area, not one per check");
    }
}

[Collection(RabbitMqCollection.Name)]
public sealed class When_messages_pile_up_in_an_error_queue(RabbitMqBroker broker)
{
    [Fact]
    public async Task Should_raise_an_alert_naming_the_queue()
    {
        var uri = await broker.IsolatedUriAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(uri, new Dictionary<string, string?>
        {
            ["Pipeline:Monitor:CheckIntervalSeconds"] = "0.5",
            ["Pipeline:Monitor:MinFreeBytes"] = "0",
            ["Pipeline:Monitor:MinFreePercent"] = "0",
        });
        await using (var connection = await RabbitMqBroker.Connect(uri))
        await using (var channel = await connection.CreateChannelAsync())
        {
            await channel.BasicPublishAsync(RunRecordedConsumerDefinition.QueueName, "", mandatory: true,
                new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent }, Encoding.UTF8.GetBytes("""{"run": -5, "files": []}"""));
        }

        var alerts = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement[]>("/api/alerts")!,
            a => a!.Any(x => x.GetProperty("key").GetString() == "error-queue:run-events_error"), TimeSpan.FromSeconds(60), "an error-queue alert");

        Assert.StartsWith("1 messages wait in run-events_error", alerts!.Single(a => a.GetProperty("kind").GetString() == "error-queue").GetProperty("message").GetString(), StringComparison.Ordinal);
        // The same reading feeds pipeline_queue_depth; it is not asserted here, where other tests' pipelines run
        // in this process at the same time and an exporter sees every meter of its name.
    }
}

public sealed class When_workers_are_busy
{
    [Fact]
    public async Task Should_report_busy_and_available_slots_through_heartbeats()
    {
        string[] arguments = ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}", "--cpu-ms-per-event", "20"];
        var settings = arguments.Select((a, i) => KeyValuePair.Create($"Pipeline:Campaign:Release:Arguments:{i}", (string?)a)).ToDictionary();
        settings["Pipeline:HeartbeatSeconds"] = "1";
        settings["Pipeline:Archiver:Writers"] = "3";
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: settings);
        var runs = await pipeline.GenerateAsync(new Pipeline.SampleExperiment.SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 200));
        await pipeline.IngestAsync(runs);

        // Each job burns about four seconds: some heartbeat catches a slot in use.
        var busy = await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary"),
            s => s.GetProperty("utilisation").EnumerateArray().Any(u => u.GetProperty("stage").GetString() == "reconstruction" && u.GetProperty("busy").GetInt32() >= 1),
            TimeSpan.FromMinutes(1), "a busy reconstruction slot");
        var utilisation = busy.GetProperty("utilisation").EnumerateArray().ToDictionary(u => u.GetProperty("stage").GetString()!);
        Assert.Equal(2, utilisation["reconstruction"].GetProperty("capacity").GetInt32());
        Assert.Equal(3, utilisation["archive"].GetProperty("capacity").GetInt32());
        Assert.Equal(1, utilisation["reconstruction"].GetProperty("instances").GetInt32());

        await pipeline.WaitForFinalAsync(4);
        await Eventually.Until(() => pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary"),
            s => s.GetProperty("utilisation").EnumerateArray().All(u => u.GetProperty("busy").GetInt32() == 0),
            TimeSpan.FromSeconds(30), "every slot free again");
    }
}
