using System.Collections.Concurrent;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pipeline.Tests.Support;

/// <summary>A real HTTP endpoint on 127.0.0.1 that keeps every JSON body posted to it, as an alerting system would.</summary>
public sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WebhookReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<JsonElement> Received { get; } = new();

    public Uri Address { get; private set; } = null!;

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/alerts", async (HttpRequestMessageBody body) => { receiver.Received.Enqueue(body.Json); await Task.CompletedTask; });
        await app.StartAsync();
        receiver.Address = new Uri(new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()), "/alerts");
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Any JSON body, as it came.</summary>
public sealed record HttpRequestMessageBody(JsonElement Json)
{
    public static async ValueTask<HttpRequestMessageBody?> BindAsync(Microsoft.AspNetCore.Http.HttpContext context) =>
        new(await JsonSerializer.DeserializeAsync<JsonElement>(context.Request.Body));
}
