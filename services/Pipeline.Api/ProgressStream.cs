using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Pipeline.Production.Audit;

namespace Pipeline.Api;

/// <summary>
/// A long check answered as it goes: asked with <c>Accept: application/x-ndjson</c>, the answer is one JSON line
/// <c>{"progress":{"step","done","total"}}</c> at most every <see cref="Interval"/> while the work runs, then one line
/// <c>{"result":…}</c> with what a plain request gets (after the last progress line), or <c>{"error":{"title","detail"}}</c> if the work failed after
/// the answer had begun. The command line draws its progress bar from these lines.
/// </summary>
public static class ProgressStream
{
    public const string MediaType = "application/x-ndjson";

    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(250);

    public static bool Wanted(HttpRequest request) =>
        request.GetTypedHeaders().Accept.Any(a => string.Equals(a.MediaType.Value, MediaType, StringComparison.OrdinalIgnoreCase));

    public static IResult Of<T>(Func<IProgress<WorkProgress>, CancellationToken, Task<T>> work) => new Streamed<T>(work);

    /// <summary>The work's latest report: the writer sends the newest one, however many came since the last line.</summary>
    private sealed class Latest : IProgress<WorkProgress>
    {
        private WorkProgress? _value;

        public WorkProgress? Value => Volatile.Read(ref _value);

        public void Report(WorkProgress value) => Volatile.Write(ref _value, value);
    }

    private sealed class Streamed<T>(Func<IProgress<WorkProgress>, CancellationToken, Task<T>> work) : IResult
    {
        public async Task ExecuteAsync(HttpContext http)
        {
            var json = http.RequestServices.GetRequiredService<IOptions<Microsoft.AspNetCore.Http.Json.JsonOptions>>().Value.SerializerOptions;
            var ct = http.RequestAborted;
            http.Response.ContentType = MediaType;
            async Task WriteAsync(object line)
            {
                await http.Response.Body.WriteAsync(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(line, json) + "\n"), ct);
                await http.Response.Body.FlushAsync(ct);
            }

            var latest = new Latest();
            var running = work(latest, ct);
            WorkProgress? sent = null;
            while (!running.IsCompleted)
            {
                await Task.WhenAny(running, Task.Delay(Interval, ct));
                if (latest.Value is { } now && now != sent)
                {
                    await WriteAsync(new { progress = now });
                    sent = now;
                }
            }
            try
            {
                var result = await running;
                // The last report too, so that a check quicker than one interval still shows how much it went through.
                if (latest.Value is { } last && last != sent)
                {
                    await WriteAsync(new { progress = last });
                }
                await WriteAsync(new { result });
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                // The status line is sent already: the failure is said in the stream, and logged here with its stack.
                http.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ProgressStream)).LogError(ex, "{Path} failed while streaming its progress", http.Request.Path);
                await WriteAsync(new { error = new { title = "The check failed", detail = ex.Message } });
            }
        }
    }
}
