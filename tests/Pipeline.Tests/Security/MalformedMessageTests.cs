using System.Text;
using System.Text.Json;
using Pipeline.Orchestrator;
using Pipeline.Tests.Support;
using RabbitMQ.Client;

namespace Pipeline.Tests.Security;

/// <summary>
/// Malformed messages on the bus: run events as data acquisition might garble them, and garbage on the stages'
/// own queues. Each lands once in its queue's error queue with the reason, is never retried in a loop, and
/// registers nothing.
/// </summary>
[Collection(RabbitMqCollection.Name)]
public sealed class When_malformed_messages_arrive_on_the_bus(RabbitMqBroker broker)
{
    private const string File1 = """{"name":"raw/run001000/physics/f1.raw","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}""";

    public static readonly string[] BadRunEvents =
    [
        "",
        "not json",
        "{",
        "[]",
        "null",
        "{}",
        """{"run": -5, "files": []}""",
        """{"run": 0, "files": [""" + File1 + "]}",
        """{"run": "1000", "files": [""" + File1 + "]}",
        """{"run": 1000}""",
        """{"run": 1000, "files": []}""",
        """{"run": 1000, "files": [null]}""",
        """{"run": 1000, "files": [{"name":"../../etc/passwd","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [{"name":"/etc/passwd","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [{"name":"raw/a\u0000b.raw","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [{"name":"raw/a\nb.raw","stream":"physics","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [{"name":"raw/a.raw","stream":"physics","section":1,"size":-100,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [{"name":"raw/a.raw","stream":"physics","section":1,"size":99999999999999999999,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [{"name":"raw/a.raw","stream":"physics","section":1,"size":100,"adler32":"xyz","events":5}]}""",
        """{"run": 1000, "files": [{"name":"raw/a.raw","stream":"a b","section":1,"size":100,"adler32":"0a0b0c0d","events":5}]}""",
        """{"run": 1000, "files": [""" + File1 + "," + File1 + "]}",
        new string('[', 5000),
    ];

    [Fact]
    public async Task Should_move_each_to_its_error_queue_once_with_the_reason_and_register_nothing()
    {
        var uri = await broker.IsolatedUriAsync();
        await using var pipeline = await PipelineUnderTest.StartAsync(uri);
        var garbage = new[] { "not json", "{}", """{"fileId": "not-a-guid"}""" };
        await using (var connection = await RabbitMqBroker.Connect(uri))
        await using (var channel = await connection.CreateChannelAsync())
        {
            foreach (var body in BadRunEvents)
            {
                await channel.BasicPublishAsync(RunRecordedConsumerDefinition.QueueName, "", mandatory: true,
                    new BasicProperties { ContentType = "application/json", DeliveryMode = DeliveryModes.Persistent }, Encoding.UTF8.GetBytes(body));
            }
            // Garbage straight into the stages' queues, as a misconfigured producer would send it.
            foreach (var queue in new[] { "stager", "reconstruction", "merger" })
            {
                foreach (var body in garbage)
                {
                    await channel.BasicPublishAsync("", queue, mandatory: true,
                        new BasicProperties { ContentType = "application/vnd.masstransit+json", DeliveryMode = DeliveryModes.Persistent }, Encoding.UTF8.GetBytes(body));
                }
            }
        }

        await using var reader = await RabbitMqBroker.Connect(uri);
        await using var inspect = await reader.CreateChannelAsync();
        await Eventually.Until(() => CountAsync(reader, "run-events_error"),
            count => count == (uint)BadRunEvents.Length, TimeSpan.FromMinutes(1), $"{BadRunEvents.Length} run events in run-events_error");
        foreach (var queue in new[] { "stager", "reconstruction", "merger" })
        {
            // MassTransit moves what it cannot read to the error queue too (the skipped queue is for readable messages nobody takes).
            await Eventually.Until(async () => await CountAsync(reader, $"{queue}_error") + await CountAsync(reader, $"{queue}_skipped"),
                count => count == (uint)garbage.Length, TimeSpan.FromMinutes(1), $"{garbage.Length} garbage messages out of {queue}");
            Assert.Equal(0u, await CountAsync(reader, queue));
        }

        // Each failed run event carries its reason, and was tried once: no redelivery loop put it back.
        var reasons = new List<string>();
        for (var i = 0; i < BadRunEvents.Length; i++)
        {
            var message = await inspect.BasicGetAsync("run-events_error", autoAck: false);
            Assert.NotNull(message);
            var headers = message!.BasicProperties.Headers!;
            Assert.True(headers.TryGetValue("MT-Fault-Message", out var reason), "no MT-Fault-Message header");
            reasons.Add(Encoding.UTF8.GetString((byte[])reason!));
        }
        Assert.All(reasons, r => Assert.False(string.IsNullOrWhiteSpace(r)));
        Assert.Contains(reasons, r => r.Contains("files[0].name", StringComparison.Ordinal));
        Assert.Equal(0u, await CountAsync(reader, "run-events"));
        Assert.Empty(await pipeline.AllFilesAsync());
        Assert.Empty(JsonSerializer.Deserialize<JsonElement[]>(await pipeline.Http.GetStringAsync("/api/runs")) ?? []);
    }

    /// <summary>Messages ready in a queue; 0 for a queue not declared yet (an error queue appears with its first fault).</summary>
    private static async Task<uint> CountAsync(IConnection connection, string queue)
    {
        // A passive declare of a missing queue closes its channel: each look gets a channel of its own.
        await using var channel = await connection.CreateChannelAsync();
        try
        {
            return (await channel.QueueDeclarePassiveAsync(queue)).MessageCount;
        }
        catch (RabbitMQ.Client.Exceptions.OperationInterruptedException)
        {
            return 0;
        }
    }
}
