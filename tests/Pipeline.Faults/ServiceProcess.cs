using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Pipeline.Faults;

/// <summary>
/// One pipeline service running as a process of its own (`dotnet Pipeline.Stager.dll`), configured through its
/// environment as a container would be, its output appended to a log file. It can be killed with SIGKILL and
/// started again on the same settings.
/// </summary>
public sealed partial class ServiceProcess : IAsyncDisposable
{
    private readonly string _dll;
    private readonly IReadOnlyDictionary<string, string> _environment;
    private readonly string _logPath;
    private Process? _process;
    private int _starts;

    public string Name { get; }

    public int Port { get; }

    public string LogPath => _logPath;

    /// <param name="host">The network namespace the process runs in, and its address there; null for this machine's loopback.</param>
    /// <param name="privateDisk">On a host: the host's own folder, mounted in place of the data folder in a mount namespace of the process's own.</param>
    public ServiceProcess(string name, string dll, IReadOnlyDictionary<string, string> environment, string logDirectory, NetworkHost? host = null, PrivateDisk? privateDisk = null)
    {
        Name = name;
        PrivateDisk = host is null ? null : privateDisk;
        _dll = dll;
        Host = host;
        Port = FreePort();
        _environment = new Dictionary<string, string>(environment, StringComparer.Ordinal)
        {
            ["urls"] = $"http://{Address}:{Port.ToString(CultureInfo.InvariantCulture)}",
            ["Pipeline__InstanceName"] = name,
        };
        _logPath = Path.Combine(logDirectory, $"{name}.log");
    }

    public NetworkHost? Host { get; }

    /// <summary>The disk of its own the process sees in place of the data folder, if its host has one.</summary>
    public PrivateDisk? PrivateDisk { get; }

    /// <summary>Where its HTTP endpoints listen: its host's address, or loopback.</summary>
    public string Address => Host?.Address ?? "127.0.0.1";

    public bool Running => _process is { HasExited: false };

    /// <summary>The running process's id (0 when it is not running).</summary>
    public int ProcessId => _process is { HasExited: false } process ? process.Id : 0;

    /// <param name="once">Settings for this start only (a crash point for one life of the process).</param>
    public async Task StartAsync(CancellationToken cancellationToken, IReadOnlyDictionary<string, string>? once = null)
    {
        var start = new ProcessStartInfo(Host is null ? "dotnet" : "ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = Path.GetDirectoryName(_dll)! };
        if (Host is not null)
        {
            // ip netns exec enters the namespace and then execs dotnet (through unshare and the mount of the host's disk,
            // each exec'ing the next): the process is dotnet itself, as without it.
            string[] command = PrivateDisk is { } disk
                ? ["netns", "exec", Host.Namespace, "unshare", "--mount", "--propagation", "private", "--", "bash", PrivateDisk.Script, disk.HostData, disk.Data, "dotnet"]
                : ["netns", "exec", Host.Namespace, "dotnet"];
            foreach (var argument in command)
            {
                start.ArgumentList.Add(argument);
            }
        }
        start.ArgumentList.Add(_dll);
        foreach (var (key, value) in _environment.Concat(once ?? new Dictionary<string, string>()))
        {
            start.Environment[key] = value;
        }
        var log = new StreamWriter(new FileStream(_logPath, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
        await log.WriteLineAsync($"---- start {++_starts} of {Name} at {DateTimeOffset.UtcNow:O}");
        var gate = new Lock();
        void Write(string? line)
        {
            if (line is not null)
            {
                lock (gate)
                {
                    log.WriteLine(line);
                }
            }
        }
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        process.OutputDataReceived += (_, e) => Write(e.Data);
        process.ErrorDataReceived += (_, e) => Write(e.Data);
        process.Exited += (_, _) =>
        {
            // Drain what the process still wrote before the log is closed.
            process.WaitForExit();
            lock (gate)
            {
                log.Dispose();
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        await WaitUntilReadyAsync(cancellationToken);
    }

    /// <summary>Ready once its store and bus are (its /health/ready answers 200).</summary>
    private async Task WaitUntilReadyAsync(CancellationToken cancellationToken)
    {
        using var http = new HttpClient { BaseAddress = new Uri($"http://{Address}:{Port.ToString(CultureInfo.InvariantCulture)}"), Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (true)
        {
            if (_process!.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode} while starting; see {_logPath}");
            }
            try
            {
                using var response = await http.GetAsync("/health/ready", cancellationToken);
                // Ready, and still running: a process that could not listen exits, and whatever answered was not it.
                if (response.IsSuccessStatusCode && !_process.HasExited)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                // Slow to answer while starting.
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{Name} was not ready within 3 minutes; see {_logPath}");
            }
            await Task.Delay(200, cancellationToken);
        }
    }

    /// <summary>kill -9: no shutdown code runs, whatever was in the middle of happening stays half done.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM, as a container runtime stops a container: the host shuts down in order.</summary>
    public async Task StopAsync(TimeSpan patience)
    {
        if (_process is not { HasExited: false } process)
        {
            return;
        }
        _ = SendSignal(process.Id, SigTerm);
        using var timeout = new CancellationTokenSource(patience);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(20));
        _process?.Dispose();
    }

    private const int SigTerm = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    // Ports handed to the suite's services: the kernel may give a port it just gave again, and two services told to
    // listen on one port leave the second one's readiness check answered by the first.
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, byte> HandedOut = new();

    private static int FreePort()
    {
        while (true)
        {
            using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
            listener.Start();
            var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
            if (HandedOut.TryAdd(port, 0))
            {
                return port;
            }
        }
    }
}

/// <summary>A host of the tests' network: a network namespace and this host's address on the bridge.</summary>
public sealed record NetworkHost(string Name, string Namespace, string Address);

/// <summary>A host's own folder (<paramref name="HostData"/>), seen by its processes in place of the shared data folder (<paramref name="Data"/>).</summary>
public sealed record PrivateDisk(string HostData, string Data)
{
    public static string Script => Path.Combine(ProcessPipeline.RepositoryRoot, "tests", "network", "private-disk.sh");

    /// <summary>The name of the marker file each host's folder holds, by which its processes' view is checked.</summary>
    public static string MarkerOf(string host) => $".disk-of-{host}";
}
