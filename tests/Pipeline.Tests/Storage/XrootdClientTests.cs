using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Infrastructure.Storage.Xrootd;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

public sealed class When_files_go_to_and_from_an_xrootd_server(XrootdServer server) : IClassFixture<XrootdServer>
{
    private readonly XrootdClient _client = new(TimeSpan.FromMinutes(1));

    private static async Task<(string Path, string Adler32, byte[] Bytes)> LocalFileAsync(TempDirectory folder, string name, int length)
    {
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        var path = Path.Combine(folder.Path, name);
        await File.WriteAllBytesAsync(path, bytes);
        return (path, Adler32Checksum.Format(Adler32Checksum.Of(bytes)), bytes);
    }

    private IEnumerable<string> Leftovers() =>
        Directory.EnumerateFiles(server.DataPath, "*", SearchOption.AllDirectories).Where(f => f.Contains(WebDavClient.TemporaryMarker, StringComparison.Ordinal));

    [SkippableFact]
    public async Task Should_upload_verify_rename_read_back_list_and_remove()
    {
        server.Require();
        using var folder = new TempDirectory();
        var (path, adler32, bytes) = await LocalFileAsync(folder, "raw-1.raw", 2 * (1 << 20) + 5);
        var target = new Uri(server.RootUri, "/archive/run000001/raw-1.raw");

        Assert.Equal(adler32, await _client.UploadAsync(path, adler32, target, CancellationToken.None));

        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(server.DataPath, "archive/run000001/raw-1.raw")));
        Assert.Empty(Leftovers());
        Assert.Equal(bytes.Length, await _client.SizeAsync(target, CancellationToken.None));
        Assert.Equal(adler32, await _client.ChecksumAsync(target, CancellationToken.None));
        Assert.Equal(["raw-1.raw"], (await _client.ListAsync(new Uri(server.RootUri, "/archive/run000001"), CancellationToken.None)).Select(e => e.Href));
        using var copy = new MemoryStream();
        Assert.Equal(adler32, await _client.DownloadAsync(target, copy, adler32, CancellationToken.None));
        Assert.Equal(bytes, copy.ToArray());
        Assert.True(await _client.DeleteAsync(target, CancellationToken.None));
        Assert.Null(await _client.SizeAsync(target, CancellationToken.None));
        Assert.False(await _client.DeleteAsync(target, CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_leave_no_file_when_the_bytes_do_not_have_the_known_checksum()
    {
        server.Require();
        using var folder = new TempDirectory();
        var (path, _, _) = await LocalFileAsync(folder, "raw-2.raw", 100_000);
        var target = new Uri(server.RootUri, "/archive/run000002/raw-2.raw");

        // xrdcp itself leaves a copy whose checksum it refused: the client removes it, and says the checksum was wrong.
        var refused = await Assert.ThrowsAsync<RemoteChecksumMismatchException>(() => _client.UploadAsync(path, "00000001", target, CancellationToken.None));
        Assert.Contains("00000001", refused.Message, StringComparison.Ordinal);

        Assert.Null(await _client.SizeAsync(target, CancellationToken.None));
        Assert.Empty(Leftovers());
    }

    [SkippableFact]
    public async Task Should_refuse_a_copy_whose_bytes_changed_on_the_servers_disk()
    {
        server.Require();
        using var folder = new TempDirectory();
        var (path, adler32, _) = await LocalFileAsync(folder, "raw-3.raw", 300_000);
        var target = new Uri(server.RootUri, "/archive/run000003/raw-3.raw");
        await _client.UploadAsync(path, adler32, target, CancellationToken.None);
        await using (var file = new FileStream(Path.Combine(server.DataPath, "archive/run000003/raw-3.raw"), FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = 1000;
            var b = file.ReadByte();
            file.Position = 1000;
            file.WriteByte((byte)(b ^ 0x80));
        }

        await Assert.ThrowsAsync<RemoteChecksumMismatchException>(() => _client.DownloadAsync(target, Stream.Null, adler32, CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_pass_a_hostile_file_name_to_the_tools_as_one_argument()
    {
        server.Require();
        using var folder = new TempDirectory();
        // Relative: a file name cannot hold a slash. A shell would make it in the working folder.
        var canary = $"pwned-{Guid.NewGuid():N}";
        var (path, adler32, _) = await LocalFileAsync(folder, $"a;touch {canary};$(touch {canary})`touch {canary}`\n\"'.raw", 10_000);
        var target = new Uri(server.RootUri, "/archive/run000004/raw-4.raw");

        Assert.Equal(adler32, await _client.UploadAsync(path, adler32, target, CancellationToken.None));

        Assert.False(File.Exists(Path.Combine(Environment.CurrentDirectory, canary)));
        Assert.Equal(adler32, await _client.ChecksumAsync(target, CancellationToken.None));
    }

    [Theory]
    [InlineData("root://user:secret@eos.example.org//eos/archive", "user information")]
    [InlineData("https://eos.example.org//eos/archive", "not a root://")]
    public void Should_refuse_a_url_with_a_credential_or_another_scheme(string url, string problem)
    {
        var refused = Assert.Throws<ArgumentException>(() => XrootdClient.CheckUrl(new Uri(url)));
        Assert.Contains(problem, refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", refused.Message, StringComparison.Ordinal);
    }
}
