using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Telemetry;
using SerilogContext = Serilog.Context.LogContext;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Consumes each message about a file inside the file's own context (<see cref="FileContext.RunAsync"/>). A batch
/// consumer, which sees a batch here, puts each of its files in its context itself.
/// </summary>
public sealed class FileContextFilter<T> : IFilter<ConsumeContext<T>>
    where T : class
{
    public Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next) =>
        context.Message is IFileMessage file
            // The queue the message came from names the service (rabbitmq://host/vhost/stager, loopback://localhost/stager).
            ? FileContext.RunAsync(context.ReceiveContext.InputAddress.AbsolutePath.TrimEnd('/').Split('/')[^1], typeof(T).Name, file, () => next.Send(context))
            : next.Send(context);

    public void Probe(ProbeContext context) => context.CreateFilterScope("fileContext");
}

/// <summary>
/// A service's work on one message about a file, done in the file's context: a span of the file's trace
/// (<see cref="FileTracing"/>) that names the service, the stage, the attempt and how it ended, and the file's id,
/// run, stream, campaign and attempt on every log line written meanwhile. One file's story can so be read from the
/// logs of every stage, and followed as one trace.
/// </summary>
public static class FileContext
{
    public static async Task RunAsync(string service, string messageType, IFileMessage file, Func<Task> work)
    {
        using var span = FileTracing.StartStep($"{service} {messageType}", FileTracing.StageOf(messageType), file);
        using (SerilogContext.PushProperty("FileId", file.FileId))
        using (SerilogContext.PushProperty("Run", file.Run))
        using (SerilogContext.PushProperty("Stream", file.Stream))
        using (SerilogContext.PushProperty("Campaign", file.Campaign))
        using (SerilogContext.PushProperty("Attempt", (file as IFileAttemptMessage)?.Attempt))
        {
            try
            {
                await work();
                FileTracing.Outcome("completed", unlessSaid: true);
            }
            catch (Exception ex)
            {
                FileTracing.Outcome($"error: {ex.GetType().Name}");
                span?.SetStatus(System.Diagnostics.ActivityStatusCode.Error, ex.Message);
                throw;
            }
        }
    }
}
