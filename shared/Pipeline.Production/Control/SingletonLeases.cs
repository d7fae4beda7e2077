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
}

/// <summary>
/// A gate over one lease in the store. The holder renews once a third of the lease has passed; it counts itself the
/// holder only until the lease it was granted runs out, measured from before it asked, so it stops before any other
/// instance can start, whatever the store's delay.
/// </summary>
internal sealed class StoreSingletonGate(string name, string holder, ISingletonLeaseStore store, SingletonOptions options, TimeProvider time, ILogger logger)
    : ISingletonGate
{
    private readonly SemaphoreSlim _asking = new(1, 1);
    private readonly TimeSpan _duration = TimeSpan.FromSeconds(options.LeaseSeconds);
    private long? _token;
    private long _heldUntil;
    private long _renewAfter;
    private long _nextAsk;

    public string Name => name;

    public long? Token => Volatile.Read(ref _heldUntil) > time.GetTimestamp() ? _token : null;

    public async Task<bool> HoldAsync(CancellationToken cancellationToken)
    {
        var now = time.GetTimestamp();
        if (_token is not null && now < Volatile.Read(ref _renewAfter))
        {
            return true;
        }
        if (_token is null && now < _nextAsk)
        {
            return false;
        }
        await _asking.WaitAsync(cancellationToken);
        try
        {
            var asked = time.GetTimestamp();
            var lease = await store.AcquireAsync(name, holder, _duration, time.GetUtcNow(), cancellationToken);
            if (lease.Holder == holder)
            {
                if (_token != lease.Token)
                {
                    logger.LogInformation("Took singleton {Singleton} (token {Token})", name, lease.Token);
                }
                _token = lease.Token;
                Volatile.Write(ref _heldUntil, asked + Ticks(_duration));
                Volatile.Write(ref _renewAfter, asked + Ticks(_duration / 3));
                return true;
            }
            if (_token is not null)
            {
                logger.LogWarning("Lost singleton {Singleton} (token {Token}) to {Holder} (token {NewToken})", name, _token, lease.Holder, lease.Token);
            }
            Forget();
            _nextAsk = asked + Ticks(TimeSpan.FromSeconds(options.StandbySeconds));
            return false;
        }
        catch
        {
            // The store could not say: past the granted lease this instance no longer counts itself the holder.
            if (Token is null)
            {
                Forget();
            }
            throw;
        }
        finally
        {
            _asking.Release();
        }
    }

    public async Task ReleaseAsync(CancellationToken cancellationToken)
    {
        if (_token is { } token)
        {
            Forget();
            await store.ReleaseAsync(name, holder, token, time.GetUtcNow(), cancellationToken);
            logger.LogInformation("Gave up singleton {Singleton} (token {Token})", name, token);
        }
    }

    private void Forget()
    {
        _token = null;
        Volatile.Write(ref _heldUntil, 0);
        Volatile.Write(ref _renewAfter, 0);
    }

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * time.TimestampFrequency);
}
