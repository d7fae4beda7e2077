using System.Diagnostics;
using System.Globalization;

namespace Pipeline.Faults;

/// <summary>
/// A RabbitMQ node of the fault suite's own, on its own port and folder, so that stopping and killing it
/// disturbs nothing else on the machine (the tests' shared broker in particular); or one node of a cluster of them,
/// each on a host of the tests' network (<see cref="StartClusterAsync"/>). Needs Debian's rabbitmq-server.
/// </summary>
public sealed class FaultBroker : IAsyncDisposable
{
    public const string ServerScript = "/usr/sbin/rabbitmq-server";
    private const string Control = "/usr/sbin/rabbitmqctl";

    private readonly string _base;
    private readonly Dictionary<string, string> _environment;

    /// <summary>The host of the tests' network the node runs on, or null for this machine.</summary>
    public NetworkHost? Host { get; }

    public string Node { get; }

    public int Port { get; }

    /// <summary>A user of the suite's own with a fresh random password: what must never show in a log.</summary>
    public string User { get; } = "pipeline-faults";

    public string Password { get; }

    /// <summary>The broker as this machine reaches it: on loopback, or at its host's address.</summary>
    public Uri Uri => UriAt(Host?.Address ?? "127.0.0.1");

    /// <summary>The broker at one of its addresses (for a node on this machine, <see cref="StartAsync"/>'s bridge address as the tests' hosts reach it).</summary>
    public Uri UriAt(string address) => new($"amqp://{User}:{Password}@{address}:{Port.ToString(CultureInfo.InvariantCulture)}/");

    private static string NewPassword() => Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    public static bool Installed => File.Exists(ServerScript) && File.Exists(Control);

    /// <summary>The node's address as the services reach it: host:port, for a list of cluster nodes.</summary>
    public string Address => $"{Host?.Address ?? "127.0.0.1"}:{Port.ToString(CultureInfo.InvariantCulture)}";

    /// <param name="password">The password of the suite's user: the cluster's, shared by its nodes; a fresh one for a node alone.</param>
    private FaultBroker(string baseDirectory, int port, TimeSpan consumerTimeout, string? bridgeAddress, NetworkHost? host, bool clustered = false, string? password = null)
    {
        _base = baseDirectory;
        Password = password ?? NewPassword();
        Port = port;
        Host = host;
        // A node alone speaks Erlang's distribution on loopback only; the nodes of a cluster speak it to each other
        // between their hosts, by the host names every host of the tests' network resolves.
        Node = $"pipeline-faults-{port.ToString(CultureInfo.InvariantCulture)}@{(clustered ? host!.Namespace : "localhost")}";
        Directory.CreateDirectory(_base);
        File.WriteAllText(Path.Combine(_base, "enabled_plugins"), "[].\n");
        File.WriteAllText(Path.Combine(_base, "rabbitmq.conf"), string.Join('\n',
            $"listeners.tcp.default = {host?.Address ?? "127.0.0.1"}:{port.ToString(CultureInfo.InvariantCulture)}",
            // Also on the tests' network bridge, for services on hosts of their own (network namespaces).
            bridgeAddress is null ? "" : $"listeners.tcp.bridge = {bridgeAddress}:{port.ToString(CultureInfo.InvariantCulture)}",
            "loopback_users.guest = true",
            // A node cut off from the others stops serving until it sees a majority again, so that a partition
            // cannot leave two halves each taking messages; the others go on (quorum queues keep a majority).
            clustered ? "cluster_partition_handling = pause_minority" : "",
            // Low, so that a job outlasting it is part of what the suite survives.
            $"consumer_timeout = {((long)consumerTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture)}",
            // Explicit, so that the disk alarm the suite raises is cleared by putting exactly this back.
            $"disk_free_limit.absolute = {DiskFreeLimit}",
            "") );
        _environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["RABBITMQ_NODENAME"] = Node,
            ["RABBITMQ_DIST_PORT"] = (port + 20000).ToString(CultureInfo.InvariantCulture),
            ["RABBITMQ_BASE"] = _base,
            ["RABBITMQ_MNESIA_BASE"] = Path.Combine(_base, "mnesia"),
            ["RABBITMQ_LOG_BASE"] = Path.Combine(_base, "log"),
            ["RABBITMQ_ENABLED_PLUGINS_FILE"] = Path.Combine(_base, "enabled_plugins"),
            ["RABBITMQ_CONFIG_FILE"] = Path.Combine(_base, "rabbitmq"),
            ["RABBITMQ_PID_FILE"] = Path.Combine(_base, "pid"),
        };
        if (!clustered)
        {
            _environment["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] = "-kernel inet_dist_use_interface {127,0,0,1}";
        }
    }

    /// <param name="bridgeAddress">An address of this machine on the tests' network bridge to listen on as well, or null.</param>
    /// <param name="host">
    /// A host of the tests' network to run the node on, listening at its address only; its control commands run there
    /// too (the Erlang distribution they speak stays on that host's loopback).
    /// </param>
    public static async Task<FaultBroker> StartAsync(string baseDirectory, int port, TimeSpan consumerTimeout, CancellationToken cancellationToken,
        string? bridgeAddress = null, NetworkHost? host = null)
    {
        var broker = new FaultBroker(baseDirectory, port, consumerTimeout, bridgeAddress, host);
        // A node of this name still running is a leftover of a run that was killed: it holds the port and the name.
        if (await broker.TryAsync(Control, ["-n", broker.Node, "-q", "ping", "--timeout", "5"], cancellationToken))
        {
            await broker.TryAsync(Control, ["-n", broker.Node, "-q", "stop"], cancellationToken);
        }
        // The node runs as the rabbitmq user (the Debian script switches to it), which must own its folder.
        await broker.RunAsync("chown", ["-R", "rabbitmq:rabbitmq", baseDirectory], null, cancellationToken);
        await broker.StartNodeAsync(cancellationToken);
        await broker.RunAsync(Control, ["-n", broker.Node, "-q", "add_user", broker.User, broker.Password], null, cancellationToken);
        await broker.RunAsync(Control, ["-n", broker.Node, "-q", "set_permissions", "-p", "/", broker.User, ".*", ".*", ".*"], null, cancellationToken);
        return broker;
    }

    /// <summary>
    /// A cluster of RabbitMQ nodes, one on each host given (in subfolders of <paramref name="baseDirectory"/>), all on
    /// the same port: the first started with the suite's user, the others joined to it. The user is the cluster's.
    /// </summary>
    public static async Task<IReadOnlyList<FaultBroker>> StartClusterAsync(string baseDirectory, int port, TimeSpan consumerTimeout, IReadOnlyList<NetworkHost> hosts,
        CancellationToken cancellationToken)
    {
        var nodes = new List<FaultBroker>();
        var password = NewPassword();
        try
        {
            foreach (var host in hosts)
            {
                var node = new FaultBroker(Path.Combine(baseDirectory, host.Name), port, consumerTimeout, null, host, clustered: true, password);
                nodes.Add(node);
                await node.RunAsync("chown", ["-R", "rabbitmq:rabbitmq", node._base], null, cancellationToken);
                // One at a time: the first start writes the Erlang cookie the nodes share.
                await node.StartNodeAsync(cancellationToken);
            }
            var first = nodes[0];
            foreach (var node in nodes.Skip(1))
            {
                await node.RunAsync(Control, ["-n", node.Node, "-q", "stop_app"], null, cancellationToken);
                await node.RunAsync(Control, ["-n", node.Node, "-q", "join_cluster", first.Node], null, cancellationToken);
                await node.RunAsync(Control, ["-n", node.Node, "-q", "start_app"], null, cancellationToken);
                await node.RunAsync(Control, ["-n", node.Node, "-q", "await_startup", "--timeout", "180"], null, cancellationToken);
            }
            await first.RunAsync(Control, ["-n", first.Node, "-q", "add_user", first.User, first.Password], null, cancellationToken);
            await first.RunAsync(Control, ["-n", first.Node, "-q", "set_permissions", "-p", "/", first.User, ".*", ".*", ".*"], null, cancellationToken);
            return nodes;
        }
        catch
        {
            foreach (var node in nodes)
            {
                await node.DisposeAsync();
            }
            throw;
        }
    }

    /// <summary>The nodes of the cluster this node is in that it sees running; 0 when it does not answer.</summary>
    public async Task<int> TryRunningNodesAsync(CancellationToken cancellationToken)
    {
        try
        {
            var status = await RunAsync(Control, ["-n", Node, "-q", "cluster_status", "--formatter", "json"], null, cancellationToken);
            using var json = System.Text.Json.JsonDocument.Parse(status);
            return json.RootElement.GetProperty("running_nodes").GetArrayLength();
        }
        catch (Exception e) when (e is InvalidOperationException or System.Text.Json.JsonException or KeyNotFoundException)
        {
            return 0;
        }
    }

    /// <summary>The client connections this node holds (in a cluster, not those of the other nodes).</summary>
    public async Task<int> ConnectionsAsync(CancellationToken cancellationToken)
    {
        // Counted by the node itself: list_connections asks every node of the cluster and was seen to wait for ever on one.
        var output = await RunAsync(Control, ["-n", Node, "-q", "eval", "length(rabbit_networking:connections_local())."], null, cancellationToken);
        return int.Parse(output.Trim(), CultureInfo.InvariantCulture);
    }

    private async Task StartNodeAsync(CancellationToken cancellationToken)
    {
        await RunAsync(ServerScript, ["-detached"], _environment, cancellationToken);
        // -detached returns before the node is reachable; await_startup fails at once against an unreachable node.
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(3);
        while (!await TryAsync(Control, ["-n", Node, "-q", "ping", "--timeout", "10"], cancellationToken))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new InvalidOperationException($"RabbitMQ node {Node} did not answer within 3 minutes; see {_base}/log");
            }
            await Task.Delay(500, cancellationToken);
        }
        await RunAsync(Control, ["-n", Node, "-q", "await_startup", "--timeout", "180"], null, cancellationToken);
    }

    /// <summary>An orderly restart of the broker application: connections drop, the node stays up.</summary>
    public async Task RestartApplicationAsync(CancellationToken cancellationToken)
    {
        await RunAsync(Control, ["-n", Node, "-q", "stop_app"], null, cancellationToken);
        await RunAsync(Control, ["-n", Node, "-q", "start_app"], null, cancellationToken);
        await RunAsync(Control, ["-n", Node, "-q", "await_startup", "--timeout", "180"], null, cancellationToken);
    }

    /// <summary>
    /// RabbitMQ's disk alarm for a while: the free-disk limit is set far above what any disk holds, so the node blocks
    /// every publishing connection (consumers go on) until the limit is put back and the alarm clears.
    /// </summary>
    /// <returns>Whether the node reported the alarm in force during that time.</returns>
    public async Task<bool> DiskAlarmAsync(TimeSpan duration, CancellationToken cancellationToken)
    {
        await RunAsync(Control, ["-n", Node, "-q", "set_disk_free_limit", "1000000GB"], null, cancellationToken);
        try
        {
            var until = DateTime.UtcNow + duration;
            var seen = false;
            while (DateTime.UtcNow < until)
            {
                seen = seen || await AlarmInForceAsync(cancellationToken);
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
            }
            return seen;
        }
        finally
        {
            await RunAsync(Control, ["-n", Node, "-q", "set_disk_free_limit", DiskFreeLimit], null, CancellationToken.None);
        }
    }

    /// <summary>Whether the node has an alarm in force (disk or memory), as `rabbitmq-diagnostics` would say.</summary>
    public async Task<bool> AlarmInForceAsync(CancellationToken cancellationToken) =>
        !await TryAsync("/usr/sbin/rabbitmq-diagnostics", ["-n", Node, "-q", "check_alarms"], cancellationToken);

    /// <summary>The node's own free-disk limit in these runs.</summary>
    private const string DiskFreeLimit = "50MB";

    /// <summary>kill -9 of the broker's process, then a fresh start on the same folder.</summary>
    public async Task KillAndStartAsync(CancellationToken cancellationToken)
    {
        var pid = int.Parse((await File.ReadAllTextAsync(Path.Combine(_base, "pid"), cancellationToken)).Trim(), CultureInfo.InvariantCulture);
        using (var process = Process.GetProcessById(pid))
        {
            process.Kill();
            await process.WaitForExitAsync(cancellationToken);
        }
        await StartNodeAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (!await TryAsync(Control, ["-n", Node, "-q", "stop", Path.Combine(_base, "pid")], CancellationToken.None))
        {
            var pidFile = Path.Combine(_base, "pid");
            if (File.Exists(pidFile) && int.TryParse((await File.ReadAllTextAsync(pidFile)).Trim(), CultureInfo.InvariantCulture, out var pid))
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill();
                }
                catch (ArgumentException)
                {
                    // Gone already.
                }
            }
        }
    }

    /// <summary>Messages ready in each queue of the node, by queue name.</summary>
    public async Task<IReadOnlyDictionary<string, long>> QueueDepthsAsync(CancellationToken cancellationToken)
    {
        var output = await RunAsync(Control, ["-n", Node, "-q", "list_queues", "name", "messages", "--no-table-headers"], null, cancellationToken);
        var depths = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = line.Split('\t', ' ');
            if (fields.Length >= 2 && long.TryParse(fields[^1], CultureInfo.InvariantCulture, out var messages))
            {
                depths[fields[0]] = messages;
            }
        }
        return depths;
    }

    private async Task<bool> TryAsync(string program, IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        try
        {
            await RunAsync(program, arguments, null, cancellationToken);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>The longest a control command may take: await_startup's own limit (180 s) and a margin.</summary>
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(4);

    /// <summary>Runs a command on the node's host: through `ip netns exec` when it has a host of the tests' network.</summary>
    private async Task<string> RunAsync(string program, IReadOnlyList<string> arguments, IReadOnlyDictionary<string, string>? environment, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(Host is null ? program : "ip") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in Host is null ? arguments : ["netns", "exec", Host.Namespace, program, .. arguments])
        {
            start.ArgumentList.Add(argument);
        }
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"cannot start {program}");
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var error = process.StandardError.ReadToEndAsync(cancellationToken);
        // A control command that hangs (a node waiting on another) must not hold the run: past the bound it failed.
        using var bound = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bound.CancelAfter(CommandTimeout);
        try
        {
            await process.WaitForExitAsync(bound.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} did not finish within {CommandTimeout.TotalMinutes:F0} minutes");
        }
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {process.ExitCode}: {await error}{await output}");
        }
        return await output;
    }
}
