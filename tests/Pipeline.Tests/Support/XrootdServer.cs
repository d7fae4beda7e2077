namespace Pipeline.Tests.Support;

/// <summary>
/// A real XRootD server for the storage tests, serving root:// and HTTP/WebDAV with server-side Adler-32 from a
/// folder of its own, on free loopback ports: started and stopped by tests/xrootd/local-server.sh, the same script
/// `make demo STORAGE=remote` uses. `make test` installs the server from Debian (xrootd-server, xrootd-client,
/// xrootd-server-plugins); where it cannot start, the tests that need it are skipped with the reason.
/// </summary>
public class XrootdServer : IAsyncLifetime
{
    private readonly bool _tape;
    private readonly bool _keytab;
    private TempDirectory? _folder;

    public XrootdServer()
        : this(tape: false, keytab: false)
    {
    }

    protected XrootdServer(bool tape, bool keytab)
    {
        _tape = tape;
        _keytab = keytab;
    }

    /// <summary>The client's keytab (with --keytab): root:// answers only a client that presents it.</summary>
    public string KeytabPath => Path.Combine(_folder!.Path, "client.keytab");

    public string? Unavailable { get; private set; }

    /// <summary>The served files, as the server keeps them on its disk.</summary>
    public string DataPath => Path.Combine(_folder!.Path, "data");

    public Uri HttpUri { get; private set; } = new("http://127.0.0.1/");

    public Uri RootUri { get; private set; } = new("root://127.0.0.1/");

    /// <summary>The nearline path (with --tape): root://host:port//tape/.</summary>
    public Uri TapeUri { get; private set; } = new("root://127.0.0.1//tape/");

    /// <summary>The simulated robot's folder (with --tape): its volumes, its mount log, its switches.</summary>
    public string LibraryPath => Path.Combine(_folder!.Path, "library");

    private static string Script => Path.Combine(Platform.RepositoryRoot, "tests", "xrootd", "local-server.sh");

    public async Task InitializeAsync()
    {
        if (!File.Exists("/usr/bin/xrootd"))
        {
            Unavailable = "No XRootD server here (/usr/bin/xrootd is missing): `make test` installs xrootd-server from Debian.";
            return;
        }
        _folder = new TempDirectory();
        var started = await RunScriptAsync("start");
        if (started is not null)
        {
            Unavailable = $"The XRootD server did not start: {started}";
            return;
        }
        var settings = (await File.ReadAllLinesAsync(Path.Combine(_folder.Path, "server.env")))
            .Select(line => line.Split('=', 2)).ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        RootUri = new Uri(settings["ROOT_URL"] + "/");
        HttpUri = new Uri(settings["HTTP_URL"] + "/");
        if (_tape)
        {
            TapeUri = new Uri(settings["TAPE_URL"] + "/");
        }
    }

    /// <summary>Runs the script; returns what it printed when it failed, or null.</summary>
    private async Task<string?> RunScriptAsync(string command)
    {
        var options = command != "start" ? [] : (_tape ? ["--tape"] : Array.Empty<string>()).Concat(_keytab ? ["--keytab"] : []);
        var run = await Tool.RunAsync("bash", new[] { Script, command, _folder!.Path }.Concat(options), new Dictionary<string, string?>
        {
            // A quick robot, and a failed migration tried again soon: the tests wait on both.
            ["TAPE_MOUNT_SECONDS"] = "0.05",
            ["TAPE_FAIL_HOLD_SECONDS"] = "2",
            ["TAPE_MIGRATION_SCAN_SECONDS"] = "1",
        });
        if (run.ExitCode == 0)
        {
            // A start that needed a second try (the server crashed while starting) is reported in the test run's output.
            foreach (var retried in run.Errors.Split('\n').Where(l => l.Contains("starting it once more", StringComparison.Ordinal)))
            {
                await Console.Error.WriteLineAsync(retried);
            }
            return null;
        }
        return run.Printed.Trim();
    }

    /// <summary>Kills the server at once, as a crash would; its files stay.</summary>
    public async Task KillAsync() => Assert.Null(await RunScriptAsync("kill"));

    /// <summary>Starts a killed or stopped server again, on the same ports and with the same files.</summary>
    public async Task StartAgainAsync() => Assert.Null(await RunScriptAsync("start"));

    /// <summary>Skips the calling test, with the reason, when the server could not start.</summary>
    public void Require() => Skip.If(Unavailable is not null, Unavailable);

    public async Task DisposeAsync()
    {
        if (_folder is not null)
        {
            await RunScriptAsync("stop");
            _folder.Dispose();
        }
    }
}

/// <summary>
/// The same server with its nearline path: /tape behind XRootD's file residency manager and the simulated robot
/// (tests/xrootd/tape-library.sh), which records every mount in <c>mounts</c> and refuses migrations while a file
/// <c>refuse-migration</c> is in its folder.
/// </summary>
public sealed class TapeXrootdServer() : XrootdServer(tape: true, keytab: false)
{
    /// <summary>The mounts the robot made to read, one volume per mount, in order.</summary>
    public IReadOnlyList<string> ReadMounts => File.Exists(Path.Combine(LibraryPath, "mounts"))
        ? [.. File.ReadAllLines(Path.Combine(LibraryPath, "mounts")).Where(l => l.StartsWith("read ", StringComparison.Ordinal)).Select(l => l["read ".Length..])]
        : [];

    /// <summary>Makes the robot refuse (or take again) every migration.</summary>
    public void RefuseMigrations(bool refuse)
    {
        var flag = Path.Combine(LibraryPath, "refuse-migration");
        if (refuse)
        {
            File.WriteAllText(flag, "");
        }
        else
        {
            File.Delete(flag);
        }
    }

    /// <summary>Unloads the drive (as an idle drive is): the next transfer mounts whatever volume it needs.</summary>
    public void UnloadDrive() => File.WriteAllText(Path.Combine(LibraryPath, "mounted"), "");

    /// <summary>How long each mount takes from now on.</summary>
    public void SetMountSeconds(double seconds) =>
        File.WriteAllText(Path.Combine(LibraryPath, "mount-seconds"), seconds.ToString(System.Globalization.CultureInfo.InvariantCulture));
}

/// <summary>The same server asking every root:// client for XRootD's simple shared secret (sss): the keytab is <see cref="XrootdServer.KeytabPath"/>.</summary>
public sealed class KeytabXrootdServer() : XrootdServer(tape: false, keytab: true);
