using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Pipeline.Tests.Support;

/// <summary>
/// A real XRootD server for the storage tests, serving root:// and HTTP/WebDAV with server-side Adler-32 from a
/// folder of its own, on free ports. `make test` installs it from Debian (xrootd-server, xrootd-client,
/// xrootd-server-plugins); where it cannot start, the tests that need it are skipped with the reason.
/// </summary>
public sealed class XrootdServer : IAsyncLifetime
{
    private const string Program = "/usr/bin/xrootd";
    private Process? _process;
    private TempDirectory? _folder;

    public string? Unavailable { get; private set; }

    /// <summary>The served files, as the server keeps them on its disk.</summary>
    public string DataPath => Path.Combine(_folder!.Path, "data");

    public Uri HttpUri { get; private set; } = new("http://127.0.0.1/");

    public Uri RootUri { get; private set; } = new("root://127.0.0.1/");

    public async Task InitializeAsync()
    {
        if (!File.Exists(Program))
        {
            Unavailable = $"No XRootD server here ({Program} is missing): `make test` installs xrootd-server from Debian.";
            return;
        }
        _folder = new TempDirectory();
        foreach (var sub in new[] { "data", "admin", "run" })
        {
            Directory.CreateDirectory(Path.Combine(_folder.Path, sub));
        }
        var (rootPort, httpPort) = (FreePort(), FreePort());
        var config = Path.Combine(_folder.Path, "xrootd.cfg");
        await File.WriteAllLinesAsync(config,
        [
            "all.export /",
            $"oss.localroot {DataPath}",
            $"all.adminpath {Path.Combine(_folder.Path, "admin")}",
            $"all.pidpath {Path.Combine(_folder.Path, "run")}",
            $"xrd.port {rootPort}",
            $"xrd.protocol XrdHttp:{httpPort} libXrdHttp.so",
            "xrootd.chksum adler32",
            // XRootD listens on every interface; only loopback connections are accepted.
            "xrd.allow host localhost",
        ]);
        var start = new ProcessStartInfo(Program) { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in new[] { "-c", config, "-l", Path.Combine(_folder.Path, "xrootd.log") })
        {
            start.ArgumentList.Add(argument);
        }
        if (Environment.UserName == "root")
        {
            // XRootD refuses to serve as root: it runs as nobody, so its folders must be open to it.
            start.ArgumentList.Add("-R");
            start.ArgumentList.Add("nobody");
            foreach (var path in Directory.EnumerateDirectories(_folder.Path).Append(_folder.Path))
            {
                File.SetUnixFileMode(path, (UnixFileMode)0b111_111_111);
            }
        }
        _process = Process.Start(start)!;
        HttpUri = new Uri($"http://127.0.0.1:{httpPort}/");
        RootUri = new Uri($"root://127.0.0.1:{rootPort}/");
        using var probe = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (_process.HasExited)
            {
                Unavailable = $"The XRootD server exited at start ({_process.ExitCode}): {await File.ReadAllTextAsync(Path.Combine(_folder.Path, "xrootd.log"))}";
                return;
            }
            try
            {
                using var response = await probe.SendAsync(new HttpRequestMessage(HttpMethod.Head, HttpUri));
                return;
            }
            catch (HttpRequestException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    /// <summary>Skips the calling test, with the reason, when the server could not start.</summary>
    public void Require() => Skip.If(Unavailable is not null, Unavailable);

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process?.Dispose();
        _folder?.Dispose();
        return Task.CompletedTask;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
