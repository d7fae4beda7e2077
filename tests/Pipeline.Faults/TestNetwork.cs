using System.Globalization;
using Pipeline.Infrastructure.Processes;

namespace Pipeline.Faults;

/// <summary>
/// Hosts for a run as network namespaces on a bridge of the run's own (tests/network/hosts.sh): each host has its
/// own address and reaches the others, and this machine at <see cref="BridgeAddress"/>, only over the bridge. A
/// host's link can be cut and restored. Needs root.
/// </summary>
public sealed class TestNetwork : IAsyncDisposable
{
    private readonly string _bridge;
    private readonly IReadOnlyList<string> _names;

    public IReadOnlyDictionary<string, NetworkHost> Hosts { get; }

    /// <summary>This machine's address on the bridge.</summary>
    public string BridgeAddress { get; }

    public NetworkHost this[string name] => Hosts[name];

    /// <summary>Hosts as network namespaces need root; the reason when this run cannot have them, or null.</summary>
    public static string? Unavailable => Environment.UserName == "root" ? null : "Hosts as network namespaces need root, which this run is not.";

    private TestNetwork(string bridge, string bridgeAddress, IReadOnlyList<string> names, IReadOnlyDictionary<string, NetworkHost> hosts)
    {
        _bridge = bridge;
        BridgeAddress = bridgeAddress;
        _names = names;
        Hosts = hosts;
    }

    /// <param name="names">Host names of at most 4 characters.</param>
    public static async Task<TestNetwork> UpAsync(IReadOnlyList<string> names, CancellationToken cancellationToken)
    {
        // A bridge and a private subnet of the run's own, so that runs side by side do not meet.
        var bridge = $"plt{Random.Shared.Next(0x10000):x4}";
        var subnet = $"10.231.{Random.Shared.Next(10, 250).ToString(CultureInfo.InvariantCulture)}";
        var printed = await RunAsync(["up", bridge, subnet, .. names], cancellationToken);
        var hosts = printed.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split(' '))
            .ToDictionary(f => f[0], f => new NetworkHost(f[0], f[1], f[2]), StringComparer.Ordinal);
        return new TestNetwork(bridge, $"{subnet}.1", names, hosts);
    }

    /// <summary>Takes the host's link down: nothing reaches it, nothing leaves it; its processes go on running.</summary>
    public Task CutAsync(string host, CancellationToken cancellationToken) => RunAsync(["cut", _bridge, host], cancellationToken);

    public Task RestoreAsync(string host, CancellationToken cancellationToken) => RunAsync(["restore", _bridge, host], cancellationToken);

    /// <summary>Removes the hosts, killing whatever still runs in them, and the bridge.</summary>
    public async ValueTask DisposeAsync() => await RunAsync(["down", _bridge, .. _names], CancellationToken.None);

    private static async Task<string> RunAsync(IReadOnlyList<string> arguments, CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync(["bash", Script, .. arguments], null, TimeSpan.FromMinutes(2), cancellationToken);
        return outcome.Succeeded ? outcome.Output : throw new InvalidOperationException($"hosts.sh {string.Join(' ', arguments)}: {outcome.Describe()}");
    }

    private static string Script => Path.Combine(ProcessPipeline.RepositoryRoot, "tests", "network", "hosts.sh");
}
