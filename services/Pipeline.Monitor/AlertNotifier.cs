using Microsoft.Extensions.Options;
using Pipeline.Production.State;
using Polly;
using Polly.Retry;

namespace Pipeline.Monitor;

/// <summary>What a webhook receives: an alert raised or resolved.</summary>
public sealed record AlertNotice(string Event, AlertRecord Alert);

/// <summary>Tells people: the log, and every configured webhook (retried, so a brief outage of the receiver loses nothing).</summary>
public sealed class AlertNotifier(HttpClient http, IOptions<MonitorOptions> options, ILogger<AlertNotifier> logger)
{
    public const string Raised = "raised";
    public const string Resolved = "resolved";

    private static readonly ResiliencePipeline Delivery = new ResiliencePipelineBuilder()
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<HttpRequestException>().Handle<TaskCanceledException>(),
            MaxRetryAttempts = 4,
            Delay = TimeSpan.FromMilliseconds(500),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
        })
        .AddTimeout(TimeSpan.FromSeconds(10))
        .Build();

    public async Task NotifyAsync(string @event, AlertRecord alert, CancellationToken cancellationToken)
    {
        if (@event == Raised)
        {
            logger.LogWarning("Alert {Key} ({Severity}): {Message}", alert.Key, alert.Severity, alert.Message);
        }
        else
        {
            logger.LogInformation("Alert {Key} resolved: {Message}", alert.Key, alert.Message);
        }
        foreach (var webhook in options.Value.Webhooks)
        {
            try
            {
                await Delivery.ExecuteAsync(async token =>
                {
                    using var response = await http.PostAsJsonAsync(webhook, new AlertNotice(@event, alert), token);
                    response.EnsureSuccessStatusCode();
                }, cancellationToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                logger.LogError(ex, "Webhook {Webhook} did not take alert {Key}", webhook, alert.Key);
            }
        }
    }
}
