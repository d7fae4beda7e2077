using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;

namespace Pipeline.Tests.Support;

/// <summary>A real HTTP endpoint on 127.0.0.1 that keeps every JSON body posted to it, as an alerting system would.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private LoopbackWebApp? _server;

    public ConcurrentQueue<JsonElement> Received { get; } = new();

    public Uri Address { get; private set; } = null!;

    public static async Task<WebhookReceiver> StartAsync()
    {
        var receiver = new WebhookReceiver();
        receiver._server = await LoopbackWebApp.StartAsync(app =>
            app.MapPost("/alerts", async (HttpRequestMessageBody body) => { receiver.Received.Enqueue(body.Json); await Task.CompletedTask; }));
        receiver.Address = new Uri(receiver._server.Address, "/alerts");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}

/// <summary>Any JSON body, as it came.</summary>
public sealed record HttpRequestMessageBody(JsonElement Json)
{
    public static async ValueTask<HttpRequestMessageBody?> BindAsync(Microsoft.AspNetCore.Http.HttpContext context) =>
        new(await JsonSerializer.DeserializeAsync<JsonElement>(context.Request.Body));
}
