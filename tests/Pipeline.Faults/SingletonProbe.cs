using System.Globalization;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Faults;

/// <summary>
/// One instance of a singleton's work, as a process of its own, for the test that pauses a holder past its lease
/// (<c>Pipeline.Faults.dll singleton-probe DB INSTANCE LEASE_SECONDS</c>). It holds the probe's lease through the
/// production gate and writes through the production store: each write reserves a file in the "probe" area (as any stage
/// does) and releases it under the term's fence, as the ledger sweep does. It prints "took TOKEN" when it takes the lease,
/// "wrote TOKEN NAME" for each release the store accepted and "refused TOKEN NAME" for each it refused. Like a singleton
/// caught in the middle of a write, it writes once more before it looks whether its term has ended.
/// </summary>
public static class SingletonProbe
{
    public const string Name = "probe";

    public static async Task<int> RunAsync(string database, string instance, double leaseSeconds)
    {
        using var store = StoreBackend.Sqlite(database);
        var leases = new SingletonLeases(store.SingletonLeases, Options.Create(new SingletonOptions { LeaseSeconds = leaseSeconds, StandbySeconds = 0.2 }),
            Options.Create(new PipelineOptions { InstanceName = instance }), TimeProvider.System, NullLoggerFactory.Instance);
        var gate = leases.For(Name);
        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };
        var written = 0;
        while (!stop.IsCancellationRequested)
        {
            if (!await gate.HoldAsync(stop.Token))
            {
                await Task.Delay(100, stop.Token);
                continue;
            }
            var fence = gate.Fence!;
            Say($"took {fence.Token}");
            while (true)
            {
                await Task.Delay(100, CancellationToken.None);
                var file = $"{instance}-{written++}";
                await store.Flow.TryReserveAsync(Name, file, 1, AreaLimits.Unbounded, DateTimeOffset.UtcNow, CancellationToken.None);
                try
                {
                    await store.Flow.ReleaseAsync(Name, file, fence, CancellationToken.None);
                    Say($"wrote {fence.Token} {file}");
                }
                catch (StaleFenceException)
                {
                    Say($"refused {fence.Token} {file}");
                }
                if (gate.Lost.IsCancellationRequested)
                {
                    Say($"lost {fence.Token}");
                    break;
                }
            }
        }
        return 0;
    }

    private static void Say(string line) => Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{line}"));
}
