using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

public sealed class When_files_go_to_and_from_a_webdav_server(XrootdServer server) : IClassFixture<XrootdServer>
{
    private static byte[] RandomBytes(int length)
    {
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        return bytes;
    }

    private IEnumerable<string> Leftovers() =>
        Directory.EnumerateFiles(server.DataPath, "*", SearchOption.AllDirectories).Where(f => f.Contains(WebDavClient.TemporaryMarker, StringComparison.Ordinal));

    [SkippableFact]
    public async Task Should_upload_under_a_temporary_name_verify_the_servers_adler32_and_read_it_back()
    {
        server.Require();
        using var http = new HttpClient();
        var client = new WebDavClient(http);
        var bytes = RandomBytes(3 * (1 << 20) + 17);
        var target = new Uri(server.HttpUri, "archive/run000001/raw-1.raw");

        var sent = (await client.UploadAsync(new MemoryStream(bytes), target, CancellationToken.None)).Adler32;

        Assert.Equal(Adler32Checksum.Format(Adler32Checksum.Of(bytes)), sent);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(server.DataPath, "archive/run000001/raw-1.raw")));
        Assert.Equal(new RemoteFile(bytes.Length, sent), await client.StatAsync(target, CancellationToken.None));
        Assert.Empty(Leftovers());
        using var copy = new MemoryStream();
        Assert.Equal(sent, await client.DownloadAsync(target, copy, sent, CancellationToken.None));
        Assert.Equal(bytes, copy.ToArray());
        Assert.Null(await client.StatAsync(new Uri(server.HttpUri, "archive/run000001/absent.raw"), CancellationToken.None));
    }

    /// <summary>A source that fails after some of its bytes, as a dying disk or a killed copy would.</summary>
    private sealed class FailingStream(byte[] bytes, int failAt) : MemoryStream(bytes)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Position >= failAt)
            {
                throw new IOException("the source failed mid-upload (test)");
            }
            return await base.ReadAsync(buffer[..(int)Math.Min(buffer.Length, failAt - Position)], cancellationToken);
        }
    }

    [SkippableFact]
    public async Task Should_leave_nothing_under_the_final_name_or_a_temporary_one_when_the_source_fails()
    {
        server.Require();
        using var http = new HttpClient();
        var client = new WebDavClient(http);
        var target = new Uri(server.HttpUri, "archive/run000002/raw-2.raw");

        await Assert.ThrowsAnyAsync<Exception>(() => client.UploadAsync(new FailingStream(RandomBytes(2 << 20), 1 << 20), target, CancellationToken.None));

        Assert.Null(await client.StatAsync(target, CancellationToken.None));
        Assert.False(File.Exists(Path.Combine(server.DataPath, "archive/run000002/raw-2.raw")));
        await Eventually.Until(() => Task.FromResult(Leftovers().ToList()), left => left.Count == 0, TimeSpan.FromSeconds(30), "the temporary upload removed");
    }

    [SkippableFact]
    public async Task Should_refuse_a_copy_whose_bytes_changed_on_the_servers_disk()
    {
        server.Require();
        using var http = new HttpClient();
        var client = new WebDavClient(http);
        var bytes = RandomBytes(1 << 20);
        var target = new Uri(server.HttpUri, "archive/run000003/raw-3.raw");
        var catalogued = (await client.UploadAsync(new MemoryStream(bytes), target, CancellationToken.None)).Adler32;

        var onDisk = Path.Combine(server.DataPath, "archive/run000003/raw-3.raw");
        await using (var file = new FileStream(onDisk, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = 4096;
            var b = file.ReadByte();
            file.Position = 4096;
            file.WriteByte((byte)(b ^ 0x01));
        }

        await Assert.ThrowsAsync<RemoteChecksumMismatchException>(() => client.DownloadAsync(target, Stream.Null, catalogued, CancellationToken.None));
    }

    [Theory]
    [InlineData("https://user:secret@eos.example.org/eos/archive", "user information")]
    [InlineData("ftp://eos.example.org/eos/archive", "not an http")]
    public void Should_refuse_a_url_with_a_credential_or_a_scheme_it_does_not_speak(string url, string problem)
    {
        var refused = Assert.Throws<ArgumentException>(() => WebDavClient.CheckUrl(new Uri(url)));
        Assert.Contains(problem, refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Should_read_davs_as_webdav_over_https()
    {
        Assert.Equal(new Uri("https://dcache.example.org:2880/pnfs/archive"), WebDavClient.CheckUrl(new Uri("davs://dcache.example.org:2880/pnfs/archive")));
        Assert.Equal(new Uri("https://dcache.example.org/pnfs/archive"), WebDavClient.CheckUrl(new Uri("davs://dcache.example.org/pnfs/archive")));
    }
}

public sealed class When_a_webdav_server_misbehaves(XrootdServer server) : IClassFixture<XrootdServer>
{
    /// <summary>Stands between the client and the real server and spoils the answers a test picks.</summary>
    private sealed class Spoiler(Func<HttpRequestMessage, int, HttpResponseMessage?> spoil) : DelegatingHandler(new HttpClientHandler())
    {
        private int _requests;

        public List<string> Seen { get; } = [];

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            lock (Seen)
            {
                Seen.Add($"{request.Method} {request.RequestUri!.AbsolutePath}");
            }
            return spoil(request, Interlocked.Increment(ref _requests)) ?? await base.SendAsync(request, cancellationToken);
        }
    }

    private static byte[] Bytes(int length)
    {
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        return bytes;
    }

    [SkippableFact]
    public async Task Should_retry_a_5xx_after_the_servers_retry_after_and_not_a_4xx()
    {
        server.Require();
        var target = new Uri(server.HttpUri, "retry/busy.raw");
        var busyOnce = 0;
        using var spoiler = new Spoiler((request, _) =>
            request.Method == HttpMethod.Head && request.RequestUri!.AbsolutePath.Contains(WebDavClient.TemporaryMarker, StringComparison.Ordinal) && Interlocked.Exchange(ref busyOnce, 1) == 0
                ? new HttpResponseMessage(System.Net.HttpStatusCode.ServiceUnavailable) { Headers = { RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(1)) } }
                : request.Method == HttpMethod.Delete ? new HttpResponseMessage(System.Net.HttpStatusCode.Forbidden) : null);
        using var http = new HttpClient(spoiler);
        var client = new WebDavClient(http);

        var sent = (await client.UploadAsync(new MemoryStream(Bytes(100_000)), target, CancellationToken.None)).Adler32;

        Assert.Equal(2, spoiler.Seen.Count(s => s.StartsWith("HEAD ", StringComparison.Ordinal) && s.Contains(WebDavClient.TemporaryMarker, StringComparison.Ordinal)));
        Assert.Equal(sent, (await client.StatAsync(target, CancellationToken.None))!.Adler32);
        var refused = await Assert.ThrowsAsync<RemoteStorageException>(() => client.DeleteAsync(target, CancellationToken.None));
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, refused.Status);
        Assert.Single(spoiler.Seen, s => s.StartsWith("DELETE ", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task Should_refuse_an_upload_the_server_reports_with_a_wrong_digest_and_leave_no_file()
    {
        server.Require();
        var target = new Uri(server.HttpUri, "digest/wrong.raw");
        using var real = new HttpClient();
        using var spoiler = new Spoiler((request, _) =>
        {
            if (request.Method != HttpMethod.Head || !request.RequestUri!.AbsolutePath.Contains(WebDavClient.TemporaryMarker, StringComparison.Ordinal))
            {
                return null;
            }
            // 200 with the file's real size and a digest of other bytes.
            var answer = real.Send(new HttpRequestMessage(HttpMethod.Head, request.RequestUri));
            answer.Headers.Remove("Digest");
            answer.Headers.TryAddWithoutValidation("Digest", "adler32=0badc0de");
            return answer;
        });
        using var http = new HttpClient(spoiler);
        var client = new WebDavClient(http);

        await Assert.ThrowsAsync<RemoteChecksumMismatchException>(() => client.UploadAsync(new MemoryStream(Bytes(200_000)), target, CancellationToken.None));

        Assert.Null(await new WebDavClient(real).StatAsync(target, CancellationToken.None));
        Assert.DoesNotContain(Directory.EnumerateFiles(server.DataPath, "*", SearchOption.AllDirectories), f => f.Contains("wrong.raw", StringComparison.Ordinal));
    }
}
