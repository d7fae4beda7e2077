using System.Net;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Storage.Http;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// An HTTPS area behind a storage door that asks for what grid storage asks for: a server certificate from a CA the
/// system does not know, a bearer token, a client certificate, redirects to another host. The door is the test's,
/// the storage behind it the real XRootD server.
/// </summary>
public sealed class When_an_https_area_needs_the_grids_ca_a_token_or_a_certificate : IClassFixture<XrootdServer>, IDisposable
{
    private readonly XrootdServer _server;
    private readonly TempDirectory _folder = new();
    private readonly TestCertificates _certificates;

    public When_an_https_area_needs_the_grids_ca_a_token_or_a_certificate(XrootdServer server)
    {
        _server = server;
        _certificates = new TestCertificates(_folder.Path);
    }

    public void Dispose() => _folder.Dispose();

    private StorageArea AreaAt(StorageGate gate, AreaAccessOptions access)
    {
        var options = new RemoteStorageOptions { ConnectTimeoutSeconds = 5 };
        options.Access["output"] = access;
        var location = new Uri(gate.Address, $"area-{Guid.NewGuid():N}/").AbsoluteUri.Replace("https://", "davs://", StringComparison.Ordinal);
        return StorageAreas.FromConfiguration(new Dictionary<string, string?> { ["output"] = location }, Path.Combine(_folder.Path, "data"), remote: options).Output;
    }

    private static async Task RoundTripAsync(StorageArea area)
    {
        var bytes = new byte[300_000];
        new Random(9).NextBytes(bytes);
        await area.WriteFromAsync("run000001/merged.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None);
        Assert.Equal(bytes.Length, (await area.ChecksumAsync("run000001/merged.raw", CancellationToken.None)).Size);
    }

    [SkippableFact]
    public async Task Should_trust_a_server_only_through_the_cas_of_the_areas_ca_path()
    {
        _server.Require();
        await using var gate = await StorageGate.StartAsync(_certificates, _server.HttpUri);

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => AreaAt(gate, new AreaAccessOptions()).StatAsync("x", CancellationToken.None));

        await RoundTripAsync(AreaAt(gate, new AreaAccessOptions { CaPath = _certificates.CaFolder }));
    }

    [SkippableFact]
    public async Task Should_send_the_token_of_its_file_and_pick_up_a_rewritten_one_without_ever_showing_it()
    {
        _server.Require();
        await using var gate = await StorageGate.StartAsync(_certificates, _server.HttpUri);
        var tokenFile = Path.Combine(_folder.Path, "token");
        await File.WriteAllTextAsync(tokenFile, "first-token-0123456789\n");
        gate.RequiredToken = "first-token-0123456789";

        var without = await Assert.ThrowsAsync<RemoteStorageException>(() => AreaAt(gate, new AreaAccessOptions { CaPath = _certificates.CaFolder }).StatAsync("x", CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, without.Status);

        var area = AreaAt(gate, new AreaAccessOptions { CaPath = _certificates.CaFolder, TokenFile = tokenFile });
        await RoundTripAsync(area);

        // The door now wants the next token; until the refresher rewrites the file, the old one is refused.
        gate.RequiredToken = "second-token-9876543210";
        var stale = await Assert.ThrowsAsync<RemoteStorageException>(() => area.StatAsync("run000001/merged.raw", CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, stale.Status);
        Assert.DoesNotContain("first-token", stale.ToString(), StringComparison.Ordinal);
        await File.WriteAllTextAsync(tokenFile, "second-token-9876543210");
        File.SetLastWriteTimeUtc(tokenFile, DateTime.UtcNow.AddSeconds(1));
        Assert.Equal(300_000, (await area.StatAsync("run000001/merged.raw", CancellationToken.None))!.Size);
    }

    [SkippableFact]
    public async Task Should_present_the_client_certificate_a_server_asks_for()
    {
        _server.Require();
        await using var gate = await StorageGate.StartAsync(_certificates, _server.HttpUri, requireClientCertificate: true);

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => AreaAt(gate, new AreaAccessOptions { CaPath = _certificates.CaFolder }).StatAsync("x", CancellationToken.None));

        await RoundTripAsync(AreaAt(gate, new AreaAccessOptions
        {
            CaPath = _certificates.CaFolder,
            ClientCertificate = _certificates.ClientCertificatePath,
            ClientKey = _certificates.ClientKeyPath,
        }));
    }

    [SkippableFact]
    public async Task Should_follow_a_redirect_only_to_a_host_the_area_allows()
    {
        _server.Require();
        await using var gate = await StorageGate.StartAsync(_certificates, _server.HttpUri, redirectToLocalhost: true);

        var refused = await Assert.ThrowsAsync<RemoteStorageException>(() =>
            AreaAt(gate, new AreaAccessOptions { CaPath = _certificates.CaFolder }).StatAsync("x", CancellationToken.None));
        Assert.Contains("redirected to localhost", refused.Message, StringComparison.Ordinal);
        Assert.Empty(gate.Passed);

        await RoundTripAsync(AreaAt(gate, new AreaAccessOptions { CaPath = _certificates.CaFolder, AllowedRedirectHosts = ["localhost"] }));
        Assert.Contains("PUT", gate.Passed);
    }

    [Fact]
    public void Should_refuse_at_start_up_a_ca_path_or_certificate_it_cannot_read_naming_the_file_only()
    {
        var missing = Path.Combine(_folder.Path, "no-such-ca");
        var refused = Assert.Throws<ArgumentException>(() =>
            HttpAreaAccess.CreateClient("output", new AreaAccessOptions { CaPath = missing }, new RemoteStorageOptions()));
        Assert.Contains(missing, refused.Message, StringComparison.Ordinal);

        var garbage = Path.Combine(_folder.Path, "client.pem");
        File.WriteAllText(garbage, "-----BEGIN CERTIFICATE-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END CERTIFICATE-----\n");
        var unreadable = Assert.Throws<ArgumentException>(() =>
            HttpAreaAccess.CreateClient("output", new AreaAccessOptions { ClientCertificate = garbage }, new RemoteStorageOptions()));
        Assert.Contains(garbage, unreadable.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("c2VjcmV0", unreadable.ToString(), StringComparison.Ordinal);
    }
}
