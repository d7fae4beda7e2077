using System.IO.Hashing;
using Pipeline.Contracts;
using Pipeline.EventFormat;

namespace Pipeline.SampleExperiment;

/// <summary>Shape of the sample data: runs × streams × files, each file a section of events.</summary>
public sealed record SampleSpec(
    int Runs = 2,
    int FirstRun = 1000,
    IReadOnlyList<string>? Streams = null,
    int FilesPerStream = 4,
    int EventsPerFile = 500,
    int PayloadBytes = 512,
    int Seed = 1)
{
    public IReadOnlyList<string> EffectiveStreams => Streams is { Count: > 0 } ? Streams : ["physics", "express"];
}

/// <summary>
/// Writes raw files as a detector would (event numbers rising through a run, random trigger bits,
/// random payloads) and returns the run announcements that describe them.
/// </summary>
public static class SampleGenerator
{
    public static string RawName(int run, string stream, int section) =>
        $"raw/run{run:D6}/{stream}/run{run:D6}_{stream}_{section:D4}.raw";

    public static Task<IReadOnlyList<RunRecorded>> GenerateAsync(string archiveRoot, SampleSpec spec, CancellationToken cancellationToken = default) =>
        GenerateAsync(async (name, body, token) =>
        {
            var path = Path.Combine(archiveRoot, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            await using var file = File.Create(path);
            await body(file, token);
        }, spec, cancellationToken);

    /// <param name="writeFile">Writes the file of a name (relative to the archive) with what the body writes into the stream it is given.</param>
    public static async Task<IReadOnlyList<RunRecorded>> GenerateAsync(
        Func<string, Func<Stream, CancellationToken, Task>, CancellationToken, Task> writeFile, SampleSpec spec, CancellationToken cancellationToken = default)
    {
        var random = new Random(spec.Seed);
        var runs = new List<RunRecorded>();
        var payload = new byte[spec.PayloadBytes];
        for (var r = 0; r < spec.Runs; r++)
        {
            var run = spec.FirstRun + r;
            var files = new List<RawFileRecord>();
            long eventNumber = 0;
            for (var section = 1; section <= spec.FilesPerStream; section++)
            {
                foreach (var stream in spec.EffectiveStreams)
                {
                    var name = RawName(run, stream, section);
                    var adler = new Adler32();
                    long size = 0;
                    await writeFile(name, async (file, token) =>
                    {
                        var hashing = new HashingWriteStream(file, adler);
                        await using (var writer = await EventWriter.CreateAsync(hashing, leaveOpen: true, token))
                        {
                            for (var i = 0; i < spec.EventsPerFile; i++)
                            {
                                random.NextBytes(payload);
                                await writer.WriteAsync(new EventRecord(run, section, ++eventNumber, RandomTrigger(random), payload), token);
                            }
                        }
                        size = hashing.Written;
                    }, cancellationToken);
                    files.Add(new RawFileRecord
                    {
                        Name = name,
                        Stream = stream,
                        Section = section,
                        Size = size,
                        Adler32 = adler.GetCurrentHashAsUInt32().ToString("x8", System.Globalization.CultureInfo.InvariantCulture),
                        Events = spec.EventsPerFile,
                    });
                }
            }
            runs.Add(new RunRecorded { Run = run, RecordedAt = DateTimeOffset.UtcNow, Files = files });
        }
        return runs;
    }

    /// <summary>
    /// Generates <paramref name="events"/> simulated events of a run into one file: trigger bits as the detector's,
    /// except that every simulated event passes the minimum-bias line (a generator only writes events it made on
    /// purpose). The conditions ("name=value,...") shape nothing but are folded into the seed, so other conditions give other events.
    /// </summary>
    public static async Task SimulateAsync(string path, int run, long events, int payloadBytes, int seed, string conditions, CancellationToken cancellationToken = default)
    {
        var random = new Random(seed ^ (run * 7919) ^ (int)Adler32.HashToUInt32(System.Text.Encoding.UTF8.GetBytes(conditions)));
        var payload = new byte[payloadBytes];
        await using var file = File.Create(path);
        await using var writer = await EventWriter.CreateAsync(file, leaveOpen: false, cancellationToken);
        for (long i = 1; i <= events; i++)
        {
            random.NextBytes(payload);
            await writer.WriteAsync(new EventRecord(run, 0, i, RandomTrigger(random) | MinimumBias, payload), cancellationToken);
        }
    }

    /// <summary>The minimum-bias trigger line (the sample's "minbias" dataset).</summary>
    public const uint MinimumBias = 0b1000_0000;

    /// <summary>Eight trigger lines, each firing for about a fifth of the events.</summary>
    private static uint RandomTrigger(Random random)
    {
        uint bits = 0;
        for (var bit = 0; bit < 8; bit++)
        {
            if (random.Next(5) == 0)
            {
                bits |= 1u << bit;
            }
        }
        return bits;
    }

    private sealed class HashingWriteStream(Stream inner, Adler32 adler) : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            inner.Write(buffer);
            adler.Append(buffer);
            Written += buffer.Length;
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await inner.WriteAsync(buffer, cancellationToken);
            adler.Append(buffer.Span);
            Written += buffer.Length;
        }
    }
}
