using System.Net.Sockets;
using MassTransit;
using Pipeline.Production.Ingest;
using Pipeline.Production.State;
using Serilog.Core;
using Serilog.Events;
using Serilog.Parsing;

namespace Pipeline.Production.Hosting;

/// <summary>
/// Writes MassTransit's retry and give-up reports (<c>R-RETRY</c>, <c>R-FAULT</c>) of an expected failure as a
/// warning with its reason and no stack: a broker that did not confirm in time, a storage server or network that
/// failed, a saga changed under a message more often than its retries allowed, a run event rejected as invalid or
/// conflicting (bad input, whose reason lists every problem). The operator acts on the reason (and
/// finds the message in the error queue); the frames of a known failure tell nothing more. Any other exception is
/// unexpected and keeps its level and its stack.
/// </summary>
public sealed class ExpectedFaultSink(ILogEventSink inner) : ILogEventSink
{
    private static readonly MessageTemplateParser Parser = new();

    public void Emit(LogEvent logEvent) => inner.Emit(Rewrite(logEvent));

    public static LogEvent Rewrite(LogEvent logEvent)
    {
        var text = logEvent.MessageTemplate.Text;
        var gaveUp = text.StartsWith("R-FAULT", StringComparison.Ordinal);
        if (logEvent.Exception is not { } exception || !(gaveUp || text.StartsWith("R-RETRY", StringComparison.Ordinal)) || ExpectedCause(exception) is not { } cause)
        {
            return logEvent;
        }
        var template = Parser.Parse(text + (gaveUp ? ": gave up after its retries, the message waits in the error queue: {Reason}" : ": tried again after {Reason}"));
        var properties = logEvent.Properties.Select(p => new LogEventProperty(p.Key, p.Value))
            .Append(new LogEventProperty("Reason", new ScalarValue($"{cause.GetType().Name}: {cause.Message}")));
        return new LogEvent(logEvent.Timestamp, LogEventLevel.Warning, null, template, properties, logEvent.TraceId ?? default, logEvent.SpanId ?? default);
    }

    /// <summary>The expected failure in an exception or its inner ones, or null when there is none.</summary>
    public static Exception? ExpectedCause(Exception? exception) => exception switch
    {
        null => null,
        TimeoutException or RequestTimeoutException or ConcurrencyConflictException or IOException or HttpRequestException or SocketException
            or InvalidRunException or ConflictingRunException => exception,
        AggregateException { InnerExceptions.Count: 1 } aggregate => ExpectedCause(aggregate.InnerExceptions[0]),
        _ => ExpectedCause(exception.InnerException),
    };
}
