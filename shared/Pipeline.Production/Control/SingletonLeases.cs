using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Production.Control;

/// <summary>How the work that runs once per system is handed between instances (Pipeline:Singletons).</summary>
public sealed class SingletonOptions
{
    public const string Section = "Pipeline:Singletons";

    /// <summary>How long a lease lasts unless renewed: a dead holder's work moves to another instance within about this.</summary>
    [Range(1, 3600)]
    public double LeaseSeconds { get; set; } = 10;

    /// <summary>How often an instance that does not hold a lease asks for it.</summary>
    [Range(0.05, 600)]
    public double StandbySeconds { get; set; } = 1;
}

/// <summary>The gates of this instance, one per singleton name, over the store's leases.</summary>
public sealed class SingletonLeases(
    ISingletonLeaseStore store, IOptions<SingletonOptions> options, IOptions<PipelineOptions> pipeline, TimeProvider time, ILoggerFactory loggers)
{
    private readonly ConcurrentDictionary<string, StoreSingletonGate> _gates = new(StringComparer.Ordinal);

    /// <summary>This instance's name in the leases it holds; unique per process even where several share a host name.</summary>
    public string Holder { get; } = $"{pipeline.Value.EffectiveInstanceName}/{Guid.NewGuid().ToString("N")[..8]}";

    public ISingletonGate For(string name) =>
        _gates.GetOrAdd(name, n => new StoreSingletonGate(n, Holder, store, options.Value, time, loggers.CreateLogger<SingletonLeases>()));

    /// <summary>
    /// Runs one piece of singleton work on demand (an operator's reconciliation, say) under the same lease as the
    /// periodic work of that name: it waits up to <paramref name="wait"/> for the lease, runs with its fence and its term's
    /// token, and gives the lease up afterwards. Null, running nothing, when another instance kept the lease all along.
    /// </summary>
    public async Task<T?> RunAsync<T>(string name, TimeSpan wait, Func<SingletonFence, CancellationToken, Task<T>> work, CancellationToken cancellationToken)
        where T : class
    {
        var gate = For(name);
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        patience.CancelAfter(wait);
        try
        {
            await Admission.WaitAsync(gate.HoldAsync, TimeSpan.FromSeconds(options.Value.StandbySeconds), time, () => { }, patience.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return null;
        }
        try
        {
            using var term = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, gate.Lost);
            return await work(gate.Fence ?? throw new StaleFenceException(new SingletonFence(name, Holder, 0)), term.Token);
        }
        finally
        {
            await gate.ReleaseAsync(CancellationToken.None);
        }
    }
}

/// <summary>
/// A gate over one lease in the store. Once taken, the lease is renewed every third of its length by a
/// <see cref="LeaseKeeper"/> of its own; the holder counts itself the holder only while renewals keep succeeding within
/// 80% of the lease, measured from before each was asked, so it stops before any other instance can start, whatever
/// the store's delay. A renewal that comes back with another token (the lease ran out meanwhile) ends the term.
/// </summary>
internal sealed class StoreSingletonGate(string name, string holder, ISingletonLeaseStore store, SingletonOptions options, TimeProvider time, ILogger logger)
    : ISingletonGate
{
    private readonly SemaphoreSlim _asking = new(1, 1);
    private readonly TimeSpan _duration = TimeSpan.FromSeconds(options.LeaseSeconds);
    private Term? _term;
    private long _nextAsk;

    public string Name => name;

    public long? Token => _term is { Keeper.Held: true } term ? term.Token : null;

    public SingletonFence? Fence => Token is { } token ? new SingletonFence(name, holder, token) : null;

    public CancellationToken Lost => _term?.Keeper.Lost ?? new CancellationToken(canceled: true);

    public async Task<bool> HoldAsync(CancellationToken cancellationToken)
    {
        if (Token is not null)
        {
            return true;
        }
        if (time.GetTimestamp() < Volatile.Read(ref _nextAsk))
        {
            return false;
        }
        await _asking.WaitAsync(cancellationToken);
        try
        {
            if (Token is not null)
            {
                return true;
            }
            await EndTermAsync();
            Volatile.Write(ref _nextAsk, time.GetTimestamp() + (long)(options.StandbySeconds * time.TimestampFrequency));
            var lease = await store.AcquireAsync(name, holder, _duration, time.GetUtcNow(), cancellationToken);
            if (lease.Holder != holder)
            {
                return false;
            }
            logger.LogInformation("Took singleton {Singleton} (token {Token})", name, lease.Token);
            var token = lease.Token;
            var keeper = LeaseKeeper.Start($"singleton {name} (token {token})", _duration / 3, _duration * 0.8, async renewal =>
            {
                var renewed = await store.AcquireAsync(name, holder, _duration, time.GetUtcNow(), renewal);
                return renewed.Holder == holder && renewed.Token == token;
            }, time, logger);
            _term = new Term(token, keeper);
            return true;
        }
        finally
        {
            _asking.Release();
        }
    }

    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        await _asking.WaitAsync(cancellationToken);
        try
        {
            if (_term is { } term)
            {
                await EndTermAsync();
                await store.ReleaseAsync(name, holder, term.Token, time.GetUtcNow(), cancellationToken);
                logger.LogInformation("Gave up singleton {Singleton} (token {Token})", name, term.Token);
            }
        }
        finally
        {
            _asking.Release();
        }
    }

    private async Task EndTermAsync()
    {
        if (_term is { } ended)
        {
            _term = null;
            await ended.Keeper.DisposeAsync();
        }
    }

    private sealed record Term(long Token, LeaseKeeper Keeper);
}
