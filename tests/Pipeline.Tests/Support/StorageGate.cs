using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Pipeline.Tests.Support;

/// <summary>A CA made for one test run, with a host certificate for 127.0.0.1 and localhost and a client certificate, as PEM files.</summary>
public sealed class TestCertificates
{
    public TestCertificates(string folder)
    {
        CaFolder = Path.Combine(folder, "certificates");
        Directory.CreateDirectory(CaFolder);
        using var caKey = RSA.Create(2048);
        var caRequest = new CertificateRequest("CN=Pipeline Test CA", caKey, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        Ca = caRequest.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        // As in a grid CA folder: the CA under its subject hash (the name does not matter to the reader, only the suffix).
        File.WriteAllText(Path.Combine(CaFolder, "5f1c2a3b.0"), Ca.ExportCertificatePem());

        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        Host = Issue("CN=localhost", names.Build(), new Oid("1.3.6.1.5.5.7.3.1"));
        Client = Issue("CN=pipeline production", null, new Oid("1.3.6.1.5.5.7.3.2"));
        ClientCertificatePath = Path.Combine(folder, "client.pem");
        ClientKeyPath = Path.Combine(folder, "client.key");
        File.WriteAllText(ClientCertificatePath, Client.ExportCertificatePem());
        File.WriteAllText(ClientKeyPath, Client.GetRSAPrivateKey()!.ExportPkcs8PrivateKeyPem());
    }

    public X509Certificate2 Ca { get; }

    public string CaFolder { get; }

    public X509Certificate2 Host { get; }

    public X509Certificate2 Client { get; }

    public string ClientCertificatePath { get; }

    public string ClientKeyPath { get; }

    private X509Certificate2 Issue(string subject, X509Extension? names, Oid usage)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        if (names is not null)
        {
            request.CertificateExtensions.Add(names);
        }
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([usage], false));
        var serial = RandomNumberGenerator.GetBytes(8);
        using var issued = request.Create(Ca, DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(12), serial);
        // Through PKCS#12, so that Kestrel on Linux can use the key.
        return X509CertificateLoader.LoadPkcs12(issued.CopyWithPrivateKey(key).Export(X509ContentType.Pkcs12), null);
    }
}

/// <summary>
/// HTTPS in front of the test's real XRootD server, as a site's storage door is: its certificate is the test CA's,
/// and it can ask for a bearer token, a client certificate from the test CA, or send each first request on to
/// another host name by a redirect. Everything it lets through goes to the XRootD server's HTTP interface unchanged.
/// </summary>
public sealed class StorageGate : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly HttpClient _upstream = new(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = Timeout.InfiniteTimeSpan };

    private StorageGate(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    /// <summary>The token a request must carry, when set; otherwise none is asked for.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>Requests that reached the upstream server, by method.</summary>
    public List<string> Passed { get; } = [];

    public static async Task<StorageGate> StartAsync(TestCertificates certificates, Uri upstream, bool requireClientCertificate = false, bool redirectToLocalhost = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen => listen.UseHttps(https =>
        {
            https.ServerCertificate = certificates.Host;
            https.ClientCertificateMode = requireClientCertificate ? ClientCertificateMode.RequireCertificate : ClientCertificateMode.NoCertificate;
            https.ClientCertificateValidation = (certificate, _, _) =>
            {
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(certificates.Ca);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                return chain.Build(certificate);
            };
        })));
        var app = builder.Build();
        var gate = new StorageGate(app);
        app.Run(context => gate.HandleAsync(context, upstream, redirectToLocalhost));
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        gate.Address = new UriBuilder(address) { Host = "127.0.0.1" }.Uri;
        return gate;
    }

    private async Task HandleAsync(HttpContext context, Uri upstream, bool redirectToLocalhost)
    {
        var request = context.Request;
        if (RequiredToken is { } token && request.Headers.Authorization.ToString() != $"Bearer {token}")
        {
            context.Response.StatusCode = StatusCodes.Status401Unauthorized;
            return;
        }
        if (redirectToLocalhost && request.Host.Host == "127.0.0.1")
        {
            context.Response.StatusCode = StatusCodes.Status307TemporaryRedirect;
            context.Response.Headers.Location = $"https://localhost:{request.Host.Port}{request.Path}{request.QueryString}";
            return;
        }
        lock (Passed)
        {
            Passed.Add(request.Method);
        }
        using var forwarded = new HttpRequestMessage(new HttpMethod(request.Method), new Uri(upstream, request.Path.ToUriComponent().TrimStart('/') + request.QueryString));
        foreach (var (name, values) in request.Headers)
        {
            if (name is "Host" or "Authorization" or "Content-Length" or "Content-Type" or "Expect")
            {
                continue;
            }
            var value = name == "Destination" ? RewriteDestination(values.ToString(), upstream) : values.ToString();
            forwarded.Headers.TryAddWithoutValidation(name, value);
        }
        if (request.ContentLength is { } length)
        {
            forwarded.Content = new StreamContent(request.Body);
            forwarded.Content.Headers.ContentLength = length;
        }
        using var answer = await _upstream.SendAsync(forwarded, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        context.Response.StatusCode = (int)answer.StatusCode;
        foreach (var (name, values) in answer.Headers.Concat(answer.Content.Headers))
        {
            if (name is not ("Transfer-Encoding" or "Connection"))
            {
                context.Response.Headers[name] = values.ToArray();
            }
        }
        await answer.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
    }

    private static string RewriteDestination(string destination, Uri upstream) =>
        Uri.TryCreate(destination, UriKind.Absolute, out var url) ? new Uri(upstream, url.PathAndQuery.TrimStart('/')).AbsoluteUri : destination;

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _upstream.Dispose();
    }
}
