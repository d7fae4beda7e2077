using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Infrastructure.Storage.Xrootd;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// Every kind of area does the same things the same way: a folder, an area on a real XRootD server over root://, and
/// one on the same server over HTTP/WebDAV. Each area gets a folder of its own on the server.
/// </summary>
public sealed class When_an_area_is_a_folder_an_xrootd_or_a_webdav_endpoint(XrootdServer server) : IClassFixture<XrootdServer>, IDisposable
{
    private readonly TempDirectory _local = new();

    public void Dispose() => _local.Dispose();

    public static TheoryData<string> Kinds => ["file", "root", "http", "gfal"];

    private (StorageArea Area, string Folder) AreaOf(string kind)
    {
        var folder = $"area-{kind}-{Guid.NewGuid():N}";
        if (kind != "file")
        {
            server.Require();
        }
        Skip.If(kind == "gfal" && !File.Exists("/usr/bin/gfal-copy"), "No gfal2 tools here: `make test` installs gfal2-util-scripts and its plugins from Debian.");
        var location = kind switch
        {
            "file" => new Uri(Path.Combine(_local.Path, folder)).AbsoluteUri,
            "root" => $"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{folder}",
            // gfal2 driving the same server's root://, as it would drive srm:// or gsiftp:// elsewhere.
            "gfal" => $"gfal+{server.RootUri.GetLeftPart(UriPartial.Authority)}//{folder}",
            _ => new Uri(server.HttpUri, folder).AbsoluteUri,
        };
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?> { ["archive"] = location }, Path.Combine(_local.Path, "data"));
        return (areas.Archive, kind == "file" ? new Uri(location).LocalPath : Path.Combine(server.DataPath, folder));
    }

    private static byte[] Bytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static IEnumerable<string> Temporaries(string folder) =>
        Directory.Exists(folder)
            ? Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories).Where(f => f.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal))
            : [];

    [SkippableTheory]
    [MemberData(nameof(Kinds))]
    public async Task Should_write_a_file_of_unknown_length_stat_it_with_the_storages_checksum_and_read_it_back(string kind)
    {
        var (area, folder) = AreaOf(kind);
        var bytes = Bytes((3 << 20) + 11, 1);
        // XRootD's HTTP interface (5.5) takes a MOVE's Destination literally, so a name that needs escaping ends up elsewhere
        // over HTTP: the client refuses that (tested below); over root:// and in a folder such a name is written as it is.
        var name = kind is "http" or "gfal" ? "run000001/raw-file_1.raw" : "run000001/raw file #1.raw";

        var (size, adler) = await area.WriteAsync(name, (target, token) => target.WriteAsync(bytes, token).AsTask(), CancellationToken.None);

        Assert.Equal(bytes.Length, size);
        Assert.Equal(Adler32Checksum.Of(bytes), adler);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(folder, name)));
        var stat = await area.StatAsync(name, CancellationToken.None);
        Assert.Equal(bytes.Length, stat!.Size);
        // A remote endpoint reports the checksum it computed itself; a folder keeps none.
        Assert.Equal(kind == "file" ? null : Adler32Checksum.Format(adler), stat.StoredAdler32);
        Assert.Equal((size, adler), await area.ChecksumAsync(name, CancellationToken.None));
        Assert.Empty(Temporaries(folder));
        Assert.Null(await area.StatAsync("run000001/absent.raw", CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_refuse_an_upload_the_server_moved_to_another_name_than_the_one_asked_for()
    {
        var (area, _) = AreaOf("http");

        var refused = await Assert.ThrowsAsync<RemoteStorageException>(() =>
            area.WriteFromAsync("run000001/raw file #1.raw", new MemoryStream(Bytes(1000, 4)), 1000, CancellationToken.None));

        Assert.Contains("did not honour the Destination", refused.Message, StringComparison.Ordinal);
        Assert.False(await area.ExistsAsync("run000001/raw file #1.raw", CancellationToken.None));
    }

    [SkippableTheory]
    [MemberData(nameof(Kinds))]
    public async Task Should_stream_a_copy_of_known_length_between_areas(string kind)
    {
        var (source, _) = AreaOf("file");
        var (target, folder) = AreaOf(kind);
        var bytes = Bytes((2 << 20) + 3, 2);
        await source.WriteFromAsync("in.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None);

        var (size, adler) = await StreamingCopy.CopyAsync(source, "in.raw", target, "copies/out.raw", CancellationToken.None);

        Assert.Equal((bytes.LongLength, Adler32Checksum.Of(bytes)), (size, adler));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(folder, "copies/out.raw")));
        var back = await StreamingCopy.CopyAsync(target, "copies/out.raw", source, "back.raw", CancellationToken.None);
        Assert.Equal((size, adler), back);
    }

    [SkippableTheory]
    [MemberData(nameof(Kinds))]
    public async Task Should_leave_nothing_under_the_final_name_or_a_temporary_one_when_the_writer_fails(string kind)
    {
        var (area, folder) = AreaOf(kind);

        await Assert.ThrowsAsync<InvalidDataException>(() => area.WriteAsync("failed/merged.raw", async (target, token) =>
        {
            await target.WriteAsync(Bytes(1 << 20, 3), token);
            throw new InvalidDataException("the merge found a bad input (test)");
        }, CancellationToken.None));

        Assert.False(await area.ExistsAsync("failed/merged.raw", CancellationToken.None));
        await Eventually.Until(() => Task.FromResult(Temporaries(folder).ToList()), left => left.Count == 0, TimeSpan.FromSeconds(30), "the temporary copy removed");
    }

    [SkippableTheory]
    [MemberData(nameof(Kinds))]
    public async Task Should_list_every_file_at_any_depth_move_without_overwriting_and_delete(string kind)
    {
        var (area, _) = AreaOf(kind);
        var spaced = kind is "http" or "gfal" ? "c_d.raw" : "c d.raw";
        foreach (var (name, length) in new[] { ("a.raw", 10), ("run000001/b.raw", 20), ($"run000001/physics/{spaced}", 30) })
        {
            await area.WriteFromAsync(name, new MemoryStream(Bytes(length, length)), length, CancellationToken.None);
        }

        var listed = await ListAsync(area, "");
        Assert.Equal(["a.raw:10", "run000001/b.raw:20", $"run000001/physics/{spaced}:30"], listed);
        Assert.Equal(["run000001/b.raw:20", $"run000001/physics/{spaced}:30"], await ListAsync(area, "run000001"));

        await area.MoveAsync("a.raw", "quarantine/a.raw", CancellationToken.None);
        await Assert.ThrowsAnyAsync<IOException>(() => area.MoveAsync("run000001/b.raw", "quarantine/a.raw", CancellationToken.None));
        Assert.Equal(20, (await area.StatAsync("run000001/b.raw", CancellationToken.None))!.Size);
        Assert.Equal(10, (await area.StatAsync("quarantine/a.raw", CancellationToken.None))!.Size);

        Assert.True(await area.DeleteAsync("quarantine/a.raw", CancellationToken.None));
        Assert.False(await area.DeleteAsync("quarantine/a.raw", CancellationToken.None));
    }

    [SkippableTheory]
    [MemberData(nameof(Kinds))]
    public async Task Should_list_one_level_with_its_folders_and_remove_a_folder_only_when_it_is_empty(string kind)
    {
        var (area, _) = AreaOf(kind);
        foreach (var (name, length) in new[] { ("run000001/b.raw", 20), ("run000001/physics/c.raw", 30) })
        {
            await area.WriteFromAsync(name, new MemoryStream(Bytes(length, length)), length, CancellationToken.None);
        }

        var level = new List<string>();
        await foreach (var entry in area.ListFolderAsync("run000001", CancellationToken.None))
        {
            level.Add(entry.IsFolder ? $"{entry.Name}/" : $"{entry.Name}:{entry.Size}");
        }
        level.Sort(StringComparer.Ordinal);
        Assert.Equal(["run000001/b.raw:20", "run000001/physics/"], level);
        Assert.Empty(await area.ListFolderAsync("run000002", CancellationToken.None).ToListAsync());

        // A folder with a file in it stays, with the file; once the file is gone, the folder can go.
        Assert.False(await area.DeleteEmptyFolderAsync("run000001/physics", CancellationToken.None));
        Assert.Equal(30, (await area.StatAsync("run000001/physics/c.raw", CancellationToken.None))!.Size);
        Assert.True(await area.DeleteAsync("run000001/physics/c.raw", CancellationToken.None));
        // A storage server keeps the folder after its last file (a folder area removes emptied folders itself); a folder
        // that is not there counts as removed.
        Assert.True(await area.DeleteEmptyFolderAsync("run000001/physics", CancellationToken.None));
        Assert.True(await area.DeleteEmptyFolderAsync("run000001/physics", CancellationToken.None));
        Assert.Equal(["run000001/b.raw"], (await area.ListFolderAsync("run000001", CancellationToken.None).ToListAsync()).Select(e => e.Name));
    }

    private static async Task<List<string>> ListAsync(StorageArea area, string folder)
    {
        var names = new List<string>();
        await foreach (var entry in area.ListAsync(folder, CancellationToken.None))
        {
            names.Add($"{entry.Name}:{entry.Size}");
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    [Theory]
    [InlineData("root://eos.example.org//eos/archive/", typeof(XrootdArea))]
    [InlineData("davs://dcache.example.org:2880/pnfs/archive/", typeof(WebDavArea))]
    [InlineData("https://storm.example.org/archive/", typeof(WebDavArea))]
    [InlineData("file:///var/tmp/pipeline-archive/", typeof(LocalArea))]
    [InlineData("srm://srm.example.org:8443/srm/managerv2?SFN=/pnfs/archive/", typeof(Pipeline.Infrastructure.Storage.Gfal.GfalArea))]
    [InlineData("gfal+davs://webdav.example.org/archive/", typeof(Pipeline.Infrastructure.Storage.Gfal.GfalArea))]
    public void Should_take_the_kind_of_an_area_from_its_scheme(string url, Type kind)
    {
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?> { ["archive"] = url }, Path.Combine(_local.Path, "data"));

        Assert.IsType(kind, areas.Archive);
        Assert.Equal(kind == typeof(LocalArea), areas.Archive.IsLocal);
    }

    [Theory]
    [InlineData("archive", "root://user:secret@eos.example.org//eos/archive/", "user information")]
    [InlineData("archive", "https://token:secret@storm.example.org/archive/", "user information")]
    [InlineData("scratch", "root://eos.example.org//eos/scratch/", "must be a file:// folder")]
    [InlineData("archive", "ftp://se.example.org/archive/", "not a kind of area")]
    public void Should_refuse_at_start_up_an_area_it_cannot_use_and_never_echo_a_credential(string name, string url, string problem)
    {
        var refused = Assert.Throws<ArgumentException>(() =>
            StorageAreas.FromConfiguration(new Dictionary<string, string?> { [name] = url }, Path.Combine(_local.Path, "data")));

        Assert.Contains(problem, refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", refused.Message, StringComparison.Ordinal);
    }
}
