using MassTransit;
using Pipeline.Contracts;
using SerilogContext = Serilog.Context.LogContext;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Puts the file a message is about (id, run, stream, campaign) on every log line written while it is
/// consumed, so one file's story can be read out of the logs of every stage.
/// </summary>
public sealed class FileLogContextFilter<T> : IFilter<ConsumeContext<T>>
    where T : class
{
    public async Task Send(ConsumeContext<T> context, IPipe<ConsumeContext<T>> next)
    {
        if (context.Message is not IFileMessage file)
        {
            await next.Send(context);
            return;
        }
        using (SerilogContext.PushProperty("FileId", file.FileId))
        using (SerilogContext.PushProperty("Run", file.Run))
        using (SerilogContext.PushProperty("Stream", file.Stream))
        using (SerilogContext.PushProperty("Campaign", file.Campaign))
        {
            await next.Send(context);
        }
    }

    public void Probe(ProbeContext context) => context.CreateFilterScope("fileLogContext");
}
