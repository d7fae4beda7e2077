using System.Text;
using Serilog.Core;
using Serilog.Events;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Gathers the ids a line is about into one property, <see cref="PropertyName"/>, for the text log: the file, run,
/// campaign and attempt (<see cref="FileContextFilter{T}"/> puts them on a message's lines) and the trace id, each only
/// where it exists, so that a line about nothing in particular stays short. The JSON log carries them as fields.
/// </summary>
public sealed class LogIdsEnricher : ILogEventEnricher
{
    public const string PropertyName = "Ids";

    private static readonly (string Property, string Label)[] Ids = [("FileId", "file"), ("Run", "run"), ("Campaign", "campaign"), ("Attempt", "attempt")];

    public void Enrich(LogEvent logEvent, ILogEventPropertyFactory propertyFactory)
    {
        var text = new StringBuilder();
        foreach (var (property, label) in Ids)
        {
            if (logEvent.Properties.TryGetValue(property, out var value) && value is not ScalarValue { Value: null })
            {
                text.Append(' ').Append(label).Append('=').Append(value is ScalarValue scalar ? scalar.Value : value);
            }
        }
        if (logEvent.TraceId is { } trace)
        {
            text.Append(" trace=").Append(trace.ToHexString());
        }
        if (text.Length > 0)
        {
            text.Insert(0, " {").Append(" }");
        }
        logEvent.AddOrUpdateProperty(new LogEventProperty(PropertyName, new ScalarValue(text.ToString())));
    }
}
