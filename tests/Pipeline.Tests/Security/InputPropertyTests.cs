using System.Text.Json;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Audit;
using Pipeline.Production.Ingest;

namespace Pipeline.Tests.Security;

/// <summary>Properties that hold for every input, checked on thousands of generated ones (FsCheck), not a handful of examples.</summary>
public sealed class When_inputs_are_generated_at_random
{
    // Names made of what path tricks are made of, so that the generator finds them often.
    private static readonly Arbitrary<string> PathLike = Gen.Elements('a', 'b', '1', '/', '.', '\\', ':', '\0', '\n', ' ', '~', '%', '_', '-')
        .ArrayOf().Select(chars => new string(chars)).ToArbitrary();

    private static readonly string Root = Path.Combine(Path.GetTempPath(), "pipeline-property-area");

    [Property(MaxTest = 2000)]
    public Property Should_never_accept_a_name_that_leaves_its_area() =>
        Prop.ForAll(PathLike, name =>
        {
            var area = new LocalArea("archive", new Uri("file://" + Root));
            if (AreaNames.Problem(name) is not null)
            {
                // Refused names are refused by the area too, with an argument error rather than anything worse.
                return Throws<ArgumentException>(() => area.PathOf(name));
            }
            var path = area.PathOf(name);
            return path.StartsWith(Root + "/", StringComparison.Ordinal) && !name.Split('/').Any(s => s is "" or "." or "..");
        });

    [Property(MaxTest = 500)]
    public Property Should_validate_any_run_event_without_throwing_and_pass_only_sound_files() =>
        Prop.ForAll(PathLike, ArbMap.Default.ArbFor<Tuple<int, long, string>>(), (name, fields) =>
        {
            var (run, size, adler32) = fields;
            var announced = new RunRecorded { Run = run, Files = [new RawFileRecord { Name = name, Stream = "physics", Section = 1, Size = size, Adler32 = adler32, Events = 1 }] };
            var problems = RunIngestion.Validate(announced);
            return problems.Count > 0 || (run > 0 && size > 0 && AreaNames.IsSafe(name) && Adler32Checksum.IsWellFormed(adler32));
        });

    [Property(MaxTest = 300)]
    public Property Should_give_the_same_adler32_however_the_bytes_are_split() =>
        Prop.ForAll(ArbMap.Default.ArbFor<byte[]>(), ArbMap.Default.ArbFor<int[]>(), (bytes, cuts) =>
        {
            bytes ??= [];
            using var stream = new ChecksummingStream(Stream.Null);
            var offset = 0;
            foreach (var cut in cuts ?? [])
            {
                var length = Math.Min(Math.Abs(cut % 97), bytes.Length - offset);
                stream.Write(bytes, offset, length);
                offset += length;
            }
            stream.Write(bytes, offset, bytes.Length - offset);
            return stream.Adler32 == Adler32Checksum.Of(bytes) && stream.Length == bytes.Length;
        });

    [Property(MaxTest = 300)]
    public Property Should_break_a_sealed_manifest_on_any_change_to_a_source() =>
        Prop.ForAll(ArbMap.Default.ArbFor<long>(), ArbMap.Default.ArbFor<long>(), (events, changed) =>
        {
            var source = new ManifestSource("raw/a.raw", "0a0b0c0d", Guid.Empty, 1000, "physics", 1, "o1", events, 1, 2);
            var manifest = new MergeManifest(MergeManifest.CurrentVersion, "m", "prompt", "muon", "v1", null, 10, "00000001", events, [source]).Sealed();
            var tampered = manifest with { Sources = [source with { Events = changed }] };
            var roundTripped = MergeManifest.Parse(manifest.ToJson())!;
            return manifest.DigestHolds && roundTripped.DigestHolds && (changed == events || !tampered.DigestHolds);
        });

    [Property(MaxTest = 500)]
    public Property Should_read_any_text_as_a_run_event_or_refuse_it_cleanly() =>
        Prop.ForAll(ArbMap.Default.ArbFor<string>(), text =>
        {
            try
            {
                var run = JsonSerializer.Deserialize<RunRecorded>(text ?? "", new JsonSerializerOptions(JsonSerializerDefaults.Web));
                _ = RunIngestion.Validate(run);
                return true;
            }
            catch (JsonException)
            {
                return true;
            }
        });

    private static bool Throws<T>(Action action)
        where T : Exception
    {
        try
        {
            action();
            return false;
        }
        catch (T)
        {
            return true;
        }
    }
}
