using System.Collections.Concurrent;
using Google.Protobuf;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Pipeline.Tests.Support;

/// <summary>One span as an OTLP exporter sent it.</summary>
public sealed record ReceivedSpan(
    string Scope, string TraceId, string SpanId, string ParentSpanId, string Name, ulong StartNanos, ulong EndNanos,
    IReadOnlyDictionary<string, string> Attributes, IReadOnlyList<string> LinkedTraceIds)
{
    public string? this[string attribute] => Attributes.GetValueOrDefault(attribute);
}

/// <summary>
/// An OTLP/HTTP trace receiver on 127.0.0.1, as a collector would be: it takes what an exporter posts to /v1/traces
/// (protobuf) and keeps every span. Only the fields the tests read are decoded, with Google.Protobuf's wire reader;
/// the rest is skipped as the format allows.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    private LoopbackWebApp? _server;

    public ConcurrentQueue<ReceivedSpan> Spans { get; } = new();

    /// <summary>What OTEL_EXPORTER_OTLP_ENDPOINT is set to: the exporter adds /v1/traces.</summary>
    public Uri Endpoint => _server!.Address;

    public static async Task<OtlpReceiver> StartAsync()
    {
        var receiver = new OtlpReceiver();
        receiver._server = await LoopbackWebApp.StartAsync(app => app.MapPost("/v1/traces", async (HttpContext http) =>
        {
            using var body = new MemoryStream();
            await http.Request.Body.CopyToAsync(body);
            foreach (var span in ReadRequest(body.ToArray()))
            {
                receiver.Spans.Enqueue(span);
            }
            // An empty ExportTraceServiceResponse: zero bytes of protobuf.
            http.Response.ContentType = "application/x-protobuf";
        }));
        return receiver;
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    /// <summary>The spans of one trace, in the order they started.</summary>
    public IReadOnlyList<ReceivedSpan> Trace(string traceId) =>
        [.. Spans.Where(s => s.TraceId == traceId).OrderBy(s => s.StartNanos)];

    // ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
    private static IEnumerable<ReceivedSpan> ReadRequest(byte[] request) =>
        Fields(request).Where(f => f.Number == 1).SelectMany(f => ReadResourceSpans(f.Bytes!));

    // ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
    private static IEnumerable<ReceivedSpan> ReadResourceSpans(byte[] resourceSpans) =>
        Fields(resourceSpans).Where(f => f.Number == 2).SelectMany(f => ReadScopeSpans(f.Bytes!));

    // ScopeSpans { InstrumentationScope scope = 1 { string name = 1; }; repeated Span spans = 2; }
    private static IEnumerable<ReceivedSpan> ReadScopeSpans(byte[] scopeSpans)
    {
        var fields = Fields(scopeSpans).ToList();
        var scope = fields.Where(f => f.Number == 1).SelectMany(f => Fields(f.Bytes!)).FirstOrDefault(f => f.Number == 1)?.Text ?? "";
        return fields.Where(f => f.Number == 2).Select(f => ReadSpan(scope, f.Bytes!));
    }

    // Span { bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5;
    //        fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9; repeated Link links = 13; }
    private static ReceivedSpan ReadSpan(string scope, byte[] span)
    {
        var fields = Fields(span).ToList();
        byte[] Bytes(int number) => fields.FirstOrDefault(f => f.Number == number)?.Bytes ?? [];
        ulong Fixed(int number) => fields.FirstOrDefault(f => f.Number == number)?.Number64 ?? 0;
        var attributes = fields.Where(f => f.Number == 9).Select(f => ReadKeyValue(f.Bytes!)).ToDictionary(a => a.Key, a => a.Value);
        // Link { bytes trace_id = 1; ... }
        var links = fields.Where(f => f.Number == 13).Select(f => Convert.ToHexStringLower(Fields(f.Bytes!).First(l => l.Number == 1).Bytes!)).ToList();
        return new ReceivedSpan(scope, Convert.ToHexStringLower(Bytes(1)), Convert.ToHexStringLower(Bytes(2)), Convert.ToHexStringLower(Bytes(4)),
            fields.FirstOrDefault(f => f.Number == 5)?.Text ?? "", Fixed(7), Fixed(8), attributes, links);
    }

    // KeyValue { string key = 1; AnyValue value = 2 { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
    private static (string Key, string Value) ReadKeyValue(byte[] keyValue)
    {
        var fields = Fields(keyValue).ToList();
        var value = fields.FirstOrDefault(f => f.Number == 2)?.Bytes is { } any ? Fields(any).FirstOrDefault() : null;
        var text = value switch
        {
            { Number: 1 } => value.Text,
            { Number: 2 or 3 } => ((long)value.Number64).ToString(System.Globalization.CultureInfo.InvariantCulture),
            { Number: 4 } => BitConverter.UInt64BitsToDouble(value.Number64).ToString(System.Globalization.CultureInfo.InvariantCulture),
            _ => "",
        };
        return (fields.First(f => f.Number == 1).Text!, text ?? "");
    }

    private sealed record Field(int Number, byte[]? Bytes, ulong Number64)
    {
        public string? Text => Bytes is null ? null : System.Text.Encoding.UTF8.GetString(Bytes);
    }

    /// <summary>The top-level fields of one protobuf message: length-delimited ones as bytes, the others as numbers.</summary>
    private static IEnumerable<Field> Fields(byte[] message)
    {
        var input = new CodedInputStream(message);
        var fields = new List<Field>();
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var number = WireFormat.GetTagFieldNumber(tag);
            fields.Add(WireFormat.GetTagWireType(tag) switch
            {
                WireFormat.WireType.LengthDelimited => new Field(number, input.ReadBytes().ToByteArray(), 0),
                WireFormat.WireType.Fixed64 => new Field(number, null, input.ReadFixed64()),
                WireFormat.WireType.Fixed32 => new Field(number, null, input.ReadFixed32()),
                WireFormat.WireType.Varint => new Field(number, null, input.ReadUInt64()),
                _ => Skipped(input),
            });
        }
        return fields.Where(f => f.Number > 0);
    }

    private static Field Skipped(CodedInputStream input)
    {
        input.SkipLastField();
        return new Field(0, null, 0);
    }
}
