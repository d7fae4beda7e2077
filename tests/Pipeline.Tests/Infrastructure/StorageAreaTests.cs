using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Infrastructure;

public class When_naming_files_in_a_storage_area
{
    [Theory]
    [InlineData("raw/run001000/physics/f.raw")]
    [InlineData("a")]
    [InlineData("with space/inside name.raw")]
    public void Should_accept_relative_names(string name) => Assert.Null(AreaNames.Problem(name));

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("../etc/passwd")]
    [InlineData("raw/../../etc/passwd")]
    [InlineData("/etc/passwd")]
    [InlineData("raw//double")]
    [InlineData("raw/./here")]
    [InlineData("raw\\windows")]
    [InlineData("nul\0byte")]
    [InlineData("new\nline")]
    [InlineData("c:/drive")]
    [InlineData("raw/ padded")]
    public void Should_refuse_names_that_could_escape_or_confuse(string name) => Assert.NotNull(AreaNames.Problem(name));

    [Fact]
    public void Should_refuse_to_resolve_a_path_outside_the_area()
    {
        using var folder = new TempDirectory();
        var area = new LocalArea("cache", new Uri(folder.Path));
        Assert.Throws<ArgumentException>(() => area.PathOf("../outside"));
        Assert.StartsWith(folder.Path, area.PathOf("inside/file"), StringComparison.Ordinal);
    }

    [Fact]
    public void Should_refuse_a_location_that_is_not_a_file_uri()
    {
        Assert.Throws<ArgumentException>(() => new LocalArea("archive", new Uri("https://example.org/archive")));
    }
}

public class When_writing_into_a_storage_area
{
    [Fact]
    public async Task Should_return_the_checksum_of_the_bytes_written()
    {
        using var folder = new TempDirectory();
        var area = new LocalArea("output", new Uri(folder.Path));
        var data = new byte[3_000_000];
        new Random(1).NextBytes(data);

        var (size, adler) = await area.WriteFromAsync("d/file.bin", new MemoryStream(data), null, CancellationToken.None);

        Assert.Equal(data.Length, size);
        Assert.Equal(Adler32Checksum.Of(data), adler);
        Assert.Equal(data, await File.ReadAllBytesAsync(area.PathOf("d/file.bin")));
        Assert.Equal((size, adler), await area.ChecksumAsync("d/file.bin", CancellationToken.None));
    }

    [Fact]
    public async Task Should_leave_nothing_under_the_name_when_the_writer_fails_midway()
    {
        using var folder = new TempDirectory();
        var area = new LocalArea("output", new Uri(folder.Path));

        await Assert.ThrowsAsync<IOException>(() => area.WriteAsync("d/file.bin", async (stream, ct) =>
        {
            await stream.WriteAsync(new byte[1000], ct);
            throw new IOException("disk went away");
        }, CancellationToken.None));

        Assert.False(area.Exists("d/file.bin"));
        Assert.Empty(Directory.EnumerateFiles(folder.Path, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Should_replace_an_existing_file_whole()
    {
        using var folder = new TempDirectory();
        var area = new LocalArea("cache", new Uri(folder.Path));
        await area.WriteFromAsync("f", new MemoryStream(new byte[10]), null, CancellationToken.None);
        await area.WriteFromAsync("f", new MemoryStream(new byte[3]), null, CancellationToken.None);
        Assert.Equal(3, area.SizeOf("f"));
    }
}

public sealed class When_a_link_in_a_storage_area_leads_out_of_it : IDisposable
{
    private readonly TempDirectory _folder = new();

    public void Dispose() => _folder.Dispose();

    private LocalArea Area() => new("archive", new Uri("file://" + Path.Combine(_folder.Path, "archive")));

    [Fact]
    public void Should_refuse_to_read_a_file_that_is_a_link_to_one_outside()
    {
        var area = Area();
        var secret = Path.Combine(_folder.Path, "secret.txt");
        File.WriteAllText(secret, "not for the archive");
        Directory.CreateDirectory(Path.Combine(area.RootPath, "raw"));
        File.CreateSymbolicLink(Path.Combine(area.RootPath, "raw", "a.raw"), secret);

        var refused = Assert.Throws<AreaEscapeException>(() => area.OpenRead("raw/a.raw"));
        Assert.Contains("leads out of the area through the link 'raw/a.raw'", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_refuse_to_write_through_a_folder_that_is_a_link_to_one_outside()
    {
        var area = Area();
        var outside = Directory.CreateDirectory(Path.Combine(_folder.Path, "elsewhere")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(area.RootPath, "merged"), outside);

        await Assert.ThrowsAsync<AreaEscapeException>(() => area.WriteAsync("merged/m.evt", (s, ct) => s.WriteAsync(new byte[] { 1, 2, 3 }, ct).AsTask(), CancellationToken.None));
        Assert.Empty(Directory.EnumerateFileSystemEntries(outside));
    }

    [Fact]
    public async Task Should_follow_a_link_that_stays_inside_the_area()
    {
        var area = Area();
        await area.WriteAsync("raw/real.raw", (s, ct) => s.WriteAsync(new byte[] { 7 }, ct).AsTask(), CancellationToken.None);
        File.CreateSymbolicLink(Path.Combine(area.RootPath, "raw", "alias.raw"), Path.Combine(area.RootPath, "raw", "real.raw"));

        await using var read = area.OpenRead("raw/alias.raw");
        Assert.Equal(7, read.ReadByte());
    }
}
