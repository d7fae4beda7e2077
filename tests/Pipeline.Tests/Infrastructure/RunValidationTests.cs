using Pipeline.Contracts;
using Pipeline.Production.Ingest;

namespace Pipeline.Tests.Infrastructure;

public class When_validating_a_run_event
{
    private static RawFileRecord GoodFile(string name = "raw/run001000/physics/f1.raw") =>
        new() { Name = name, Stream = "physics", Section = 1, Size = 1000, Adler32 = "0a0b0c0d", Events = 10 };

    private static RunRecorded Run(params RawFileRecord[] files) => new() { Run = 1000, Files = files };

    [Fact]
    public void Should_accept_a_complete_run() => Assert.Empty(RunIngestion.Validate(Run(GoodFile())));

    [Fact]
    public void Should_require_a_body_a_run_number_and_files()
    {
        Assert.Contains("body", RunIngestion.Validate(null).Keys);
        var errors = RunIngestion.Validate(new RunRecorded { Run = 0 });
        Assert.Contains("run", errors.Keys);
        Assert.Contains("files", errors.Keys);
    }

    [Theory]
    [InlineData("name", null)]
    [InlineData("name", "../escape.raw")]
    [InlineData("name", "/absolute/path.raw")]
    [InlineData("stream", null)]
    [InlineData("stream", "bad stream")]
    [InlineData("size", null)]
    [InlineData("adler32", "xyz")]
    [InlineData("adler32", null)]
    [InlineData("events", null)]
    [InlineData("section", null)]
    public void Should_name_the_field_that_is_wrong(string field, string? value)
    {
        var file = field switch
        {
            "name" => GoodFile() with { Name = value },
            "stream" => GoodFile() with { Stream = value },
            "size" => GoodFile() with { Size = -5 },
            "adler32" => GoodFile() with { Adler32 = value },
            "events" => GoodFile() with { Events = -1 },
            "section" => GoodFile() with { Section = -1 },
            _ => throw new ArgumentOutOfRangeException(nameof(field)),
        };
        var errors = RunIngestion.Validate(Run(file));
        Assert.Equal([$"files[0].{field}"], errors.Keys);
    }

    [Fact]
    public void Should_refuse_the_same_file_twice_in_one_run()
    {
        var errors = RunIngestion.Validate(Run(GoodFile(), GoodFile()));
        Assert.Contains("files[1].name", errors.Keys);
    }

    [Fact]
    public void Should_list_every_problem_not_just_the_first()
    {
        var errors = RunIngestion.Validate(new RunRecorded { Run = -1, Files = [GoodFile() with { Size = 0, Adler32 = "no" }] });
        Assert.Equal(3, errors.Count);
    }

    [Fact]
    public void Should_digest_the_same_files_the_same_way_in_any_order()
    {
        var a = GoodFile("raw/a.raw");
        var b = GoodFile("raw/b.raw");
        Assert.Equal(RunIngestion.Digest(Run(a, b)), RunIngestion.Digest(Run(b, a) with { RecordedAt = DateTimeOffset.UnixEpoch }));
        Assert.NotEqual(RunIngestion.Digest(Run(a, b)), RunIngestion.Digest(Run(a, b with { Size = 1 })));
    }
}
