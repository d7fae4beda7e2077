using System.Net;
using System.Net.Http.Headers;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace Pipeline.Infrastructure.Storage.Http;

/// <summary>
/// How one remote area is reached beyond its URL (section <c>Pipeline:Storage:Access:&lt;area&gt;</c>): the grid's
/// CAs, the client's credentials (file paths only: a credential never sits in a setting's value or a URL), and the
/// hosts a redirect may lead to.
/// </summary>
public sealed class AreaAccessOptions
{
    /// <summary>A folder of CA certificates (a grid's /etc/grid-security/certificates) or one PEM bundle; replaces the system's CAs for this area.</summary>
    public string? CaPath { get; set; }

    /// <summary>A file holding a bearer token (WLCG/SciTokens style), read again whenever it changes.</summary>
    public string? TokenFile { get; set; }

    /// <summary>A PEM client certificate, or an X.509 proxy (certificate, key and chain in one file), read again when it changes.</summary>
    public string? ClientCertificate { get; set; }

    /// <summary>The certificate's key, when it is not in the certificate's file.</summary>
    public string? ClientKey { get; set; }

    /// <summary>An XRootD simple-shared-secret keytab (<c>sss</c>), for root:// areas whose server asks for it.</summary>
    public string? KeytabFile { get; set; }

    /// <summary>Hosts a redirect may send a request to (dCache's pools, EOS's disk servers); a redirect elsewhere is refused.</summary>
    public string[] AllowedRedirectHosts { get; set; } = [];
}

/// <summary>Makes the HTTP client of one remote area from its access settings.</summary>
public static class HttpAreaAccess
{
    public static HttpClient CreateClient(string area, AreaAccessOptions access, RemoteStorageOptions options)
    {
        HttpMessageHandler handler = new RenewingCertificateHandler(() => Connections(area, access, options), access.ClientCertificate);
        if (access.TokenFile is { } tokenFile)
        {
            handler = new BearerTokenHandler(tokenFile) { InnerHandler = handler };
        }
        // Outermost, so that every hop of a redirect carries the token (to allowed hosts only).
        handler = new RedirectPolicyHandler(area, access.AllowedRedirectHosts) { InnerHandler = handler };
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(options.TimeoutSeconds) };
    }

    private static SocketsHttpHandler Connections(string area, AreaAccessOptions access, RemoteStorageOptions options)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectTimeout = TimeSpan.FromSeconds(options.ConnectTimeoutSeconds),
            MaxConnectionsPerServer = options.MaxConnectionsPerServer,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(1),
            // Redirects are followed by RedirectPolicyHandler, to allowed hosts only.
            AllowAutoRedirect = false,
        };
        if (access.CaPath is { } caPath)
        {
            var (roots, intermediates) = CertificateAuthorities(area, caPath);
            handler.SslOptions.RemoteCertificateValidationCallback = (_, certificate, chain, errors) =>
                TrustedByAreaCas(certificate, chain, errors, roots, intermediates);
        }
        if (access.ClientCertificate is { } certificatePath)
        {
            handler.SslOptions.ClientCertificateContext = ClientCertificate(area, certificatePath, access.ClientKey);
        }
        return handler;
    }

    /// <summary>The CAs of a folder (PEM files, hashed links such as 1a2b3c4d.0) or of one bundle file.</summary>
    public static (X509Certificate2Collection Roots, X509Certificate2Collection Intermediates) CertificateAuthorities(string area, string caPath)
    {
        var all = new X509Certificate2Collection();
        var files = Directory.Exists(caPath)
            ? Directory.EnumerateFiles(caPath).Where(f => f.EndsWith(".pem", StringComparison.Ordinal) || f.EndsWith(".crt", StringComparison.Ordinal)
                || (f.Length > 2 && f[^2] == '.' && char.IsDigit(f[^1])))
            : File.Exists(caPath) ? [caPath] : throw new ArgumentException($"Area '{area}': the CA path {caPath} is neither a folder nor a file.");
        foreach (var file in files)
        {
            all.ImportFromPemFile(file);
        }
        if (all.Count == 0)
        {
            throw new ArgumentException($"Area '{area}': no CA certificate found in {caPath}.");
        }
        var roots = new X509Certificate2Collection();
        var intermediates = new X509Certificate2Collection();
        foreach (var certificate in all)
        {
            (certificate.SubjectName.RawData.AsSpan().SequenceEqual(certificate.IssuerName.RawData) ? roots : intermediates).Add(certificate);
        }
        return (roots, intermediates);
    }

    private static bool TrustedByAreaCas(X509Certificate? certificate, X509Chain? presented, SslPolicyErrors errors, X509Certificate2Collection roots, X509Certificate2Collection intermediates)
    {
        // A wrong host name or no certificate at all is never forgiven; only the chain is judged again, against the area's CAs.
        if (certificate is null || (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) != SslPolicyErrors.None)
        {
            return false;
        }
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(roots);
        chain.ChainPolicy.ExtraStore.AddRange(intermediates);
        if (presented is not null)
        {
            chain.ChainPolicy.ExtraStore.AddRange(presented.ChainPolicy.ExtraStore);
        }
        // Grid CAs publish their revocation lists in the CA folder, which .NET does not read; that check is not made yet.
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return chain.Build(leaf);
    }

    /// <summary>The client certificate with its chain (an X.509 proxy sends the user's certificate after the proxy).</summary>
    private static SslStreamCertificateContext ClientCertificate(string area, string certificatePath, string? keyPath)
    {
        try
        {
            var leaf = X509Certificate2.CreateFromPemFile(certificatePath, keyPath ?? certificatePath);
            var chain = new X509Certificate2Collection();
            chain.ImportFromPemFile(certificatePath);
            var rest = new X509Certificate2Collection();
            foreach (var certificate in chain.Skip(1))
            {
                rest.Add(certificate);
            }
            return SslStreamCertificateContext.Create(leaf, rest, offline: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            // The message names the file, never its content.
            throw new ArgumentException($"Area '{area}': the client certificate {certificatePath} cannot be used: {ex.GetType().Name}.", ex);
        }
    }
}

/// <summary>
/// Sends <c>Authorization: Bearer</c> with the token in a file, read again whenever the file changes (a token
/// refresher rewrites it before the old one expires). The token is never logged and never put in an exception.
/// </summary>
public sealed class BearerTokenHandler(string tokenFile) : DelegatingHandler
{
    private readonly Lock _gate = new();
    private (DateTime Written, long Length, string Token)? _cached;

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", CurrentToken());
        return base.SendAsync(request, cancellationToken);
    }

    private string CurrentToken()
    {
        var file = new FileInfo(tokenFile);
        if (!file.Exists)
        {
            throw new RemoteStorageException($"The token file {tokenFile} is missing.");
        }
        lock (_gate)
        {
            if (_cached is { } cached && cached.Written == file.LastWriteTimeUtc && cached.Length == file.Length)
            {
                return cached.Token;
            }
            var token = File.ReadAllText(tokenFile).Trim();
            if (token.Length == 0 || token.Any(c => char.IsControl(c) || c == ' '))
            {
                throw new RemoteStorageException($"The token file {tokenFile} is empty or does not hold one token.");
            }
            _cached = (file.LastWriteTimeUtc, file.Length, token);
            return token;
        }
    }
}

/// <summary>
/// Follows a redirect (301, 302, 303, 307, 308) only to a host the area allows, at most five times; any other is
/// refused with the host's name, so a storage system cannot send the data, or the token, somewhere unexpected.
/// An upload asks <c>Expect: 100-continue</c> when redirects are allowed, so the redirect comes before its bytes go.
/// </summary>
public sealed class RedirectPolicyHandler(string area, IReadOnlyCollection<string> allowedHosts) : DelegatingHandler
{
    private const int MaxHops = 5;

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        if (allowedHosts.Count > 0 && request.Content is not null)
        {
            request.Headers.ExpectContinue = true;
        }
        var response = await base.SendAsync(request, cancellationToken);
        for (var hop = 0; IsRedirect(response.StatusCode); hop++)
        {
            var target = response.Headers.Location is { } location
                ? (location.IsAbsoluteUri ? location : new Uri(request.RequestUri!, location))
                : null;
            var method = request.Method;
            response.Dispose();
            if (target is null || hop == MaxHops)
            {
                throw new RemoteStorageException($"{method} {request.RequestUri!.GetLeftPart(UriPartial.Path)} was redirected {(target is null ? "without a Location" : $"more than {MaxHops} times")}.");
            }
            if (!allowedHosts.Contains(target.Host, StringComparer.OrdinalIgnoreCase))
            {
                throw new RemoteStorageException(
                    $"{method} {request.RequestUri!.GetLeftPart(UriPartial.Path)} was redirected to {target.Host}, which area '{area}' does not allow " +
                    $"(Pipeline:Storage:Access:{area}:AllowedRedirectHosts).", HttpStatusCode.Redirect);
            }
            request.RequestUri = target;
            if (response.StatusCode == HttpStatusCode.SeeOther)
            {
                request.Method = HttpMethod.Get;
                request.Content = null;
            }
            response = await base.SendAsync(request, cancellationToken);
        }
        return response;
    }

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
        or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;
}

/// <summary>
/// Sends through a connection handler made from the current client certificate, and makes a new one when the
/// certificate's file changes (a proxy is renewed every few hours): new requests use the new certificate, requests
/// under way finish on the old connections, which close once idle.
/// </summary>
public sealed class RenewingCertificateHandler : HttpMessageHandler
{
    private static readonly TimeSpan CheckEvery = TimeSpan.FromSeconds(30);
    private readonly Func<SocketsHttpHandler> _create;
    private readonly string? _certificateFile;
    private readonly Lock _gate = new();
    private HttpMessageInvoker _current;
    private DateTime _written;
    private long _checkedAt;

    public RenewingCertificateHandler(Func<SocketsHttpHandler> create, string? certificateFile)
    {
        _create = create;
        _certificateFile = certificateFile;
        _written = certificateFile is null ? default : File.GetLastWriteTimeUtc(certificateFile);
        _current = new HttpMessageInvoker(create(), disposeHandler: true);
        _checkedAt = Environment.TickCount64;
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        Current().SendAsync(request, cancellationToken);

    private HttpMessageInvoker Current()
    {
        if (_certificateFile is null || Environment.TickCount64 - Interlocked.Read(ref _checkedAt) < CheckEvery.TotalMilliseconds)
        {
            return _current;
        }
        lock (_gate)
        {
            Interlocked.Exchange(ref _checkedAt, Environment.TickCount64);
            var written = File.GetLastWriteTimeUtc(_certificateFile);
            if (written != _written)
            {
                // The old invoker is not disposed: requests may still be using it; its idle connections close by themselves.
                _current = new HttpMessageInvoker(_create(), disposeHandler: true);
                _written = written;
            }
            return _current;
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _current.Dispose();
        }
        base.Dispose(disposing);
    }
}
