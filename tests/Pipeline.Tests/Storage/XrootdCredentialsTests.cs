using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// A root:// area whose server asks for a credential: a real XRootD server that answers only clients presenting its
/// simple-shared-secret keytab, configured as the area's access setting (Pipeline:Storage:Access:&lt;area&gt;:KeytabFile).
/// </summary>
public sealed class When_an_xrootd_server_asks_for_credentials(KeytabXrootdServer server) : IClassFixture<KeytabXrootdServer>
{
    private StorageAreas Areas(AreaAccessOptions? access, string top)
    {
        var remote = new RemoteStorageOptions { ConnectTimeoutSeconds = 2, RequestTimeoutSeconds = 10 };
        if (access is not null)
        {
            remote.Access["archive"] = access;
        }
        return StorageAreas.FromConfiguration(new Dictionary<string, string?> { ["archive"] = $"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{top}/" },
            Path.GetTempPath(), remote: remote);
    }

    [SkippableFact]
    public async Task Should_be_refused_without_the_keytab_and_work_with_it()
    {
        server.Require();
        var top = $"keytab-{Guid.NewGuid():N}";
        var bytes = new byte[70_000];
        new Random(11).NextBytes(bytes);

        var without = Areas(null, top).Archive;
        var refused = await Assert.ThrowsAnyAsync<IOException>(() => without.WriteFromAsync("a/file.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None));
        Assert.Contains("Auth", refused.Message, StringComparison.OrdinalIgnoreCase);

        var with = Areas(new AreaAccessOptions { KeytabFile = server.KeytabPath }, top).Archive;
        var (size, adler) = await with.WriteFromAsync("a/file.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None);
        Assert.Equal((bytes.Length, Adler32Checksum.Of(bytes)), (size, adler));
        var stored = await with.StatAsync("a/file.raw", CancellationToken.None);
        Assert.Equal(Adler32Checksum.Format(adler), stored!.StoredAdler32);
        Assert.Equal(Adler32Checksum.Of(bytes), (await with.ChecksumAsync("a/file.raw", CancellationToken.None)).Adler32);
        Assert.Single(await with.ListAsync("a", CancellationToken.None).ToListAsync());
    }

    [SkippableFact]
    public void Should_refuse_an_unreadable_credential_at_start_up_naming_the_file_only()
    {
        server.Require();
        var missing = Path.Combine(Path.GetTempPath(), $"no-such-keytab-{Guid.NewGuid():N}");
        var refused = Assert.Throws<ArgumentException>(() => Areas(new AreaAccessOptions { KeytabFile = missing }, "x"));
        Assert.Contains(missing, refused.Message, StringComparison.Ordinal);
        Assert.Contains("'archive'", refused.Message, StringComparison.Ordinal);
        // A CA bundle is not what the XRootD tools take: said at start-up, not at the first copy.
        var bundle = Assert.Throws<ArgumentException>(() => Areas(new AreaAccessOptions { CaPath = server.KeytabPath }, "x"));
        Assert.Contains("folder of CA certificates", bundle.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(File.ReadAllText(server.KeytabPath).Trim(), bundle.Message, StringComparison.Ordinal);
    }
}
