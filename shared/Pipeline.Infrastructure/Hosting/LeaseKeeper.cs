using Microsoft.Extensions.Logging;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// Keeps a lease alive while work runs under it: a reconstruction attempt's claim, an archive writer's mover, a
/// singleton's term. It asks for a renewal every <c>every</c>, on a timer of its own, however long the work's steps take.
/// The work must stop (<see cref="Lost"/> is cancelled) when a renewal is refused, or when no renewal succeeded within
/// <c>patience</c> of the start of the last one that did: a holder that cannot renew stops before its lease can have run
/// out, so that whoever takes the lease over never works beside it.
/// </summary>
public sealed class LeaseKeeper : IAsyncDisposable
{
    private readonly string _what;
    private readonly TimeSpan _every;
    private readonly TimeSpan _patience;
    private readonly Func<CancellationToken, Task<bool>> _renew;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenSource _lost;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _renewals;
    private long _lastGranted;

    private LeaseKeeper(string what, TimeSpan every, TimeSpan patience, Func<CancellationToken, Task<bool>> renew, TimeProvider time, ILogger logger, CancellationToken stopping)
    {
        _what = what;
        _every = every;
        _patience = patience;
        _renew = renew;
        _time = time;
        _logger = logger;
        // The deadline moves on with each renewal; if none comes in time it cancels the work by itself, at the moment the
        // patience runs out, whatever the renewals are doing.
        _deadline = new CancellationTokenSource(patience, time);
        _deadline.Token.Register(() => _logger.LogWarning("Lost {What}: it was not renewed within {Seconds:F0} s; its work stops", _what, _patience.TotalSeconds));
        _lost = CancellationTokenSource.CreateLinkedTokenSource(stopping, _deadline.Token);
        Lost = _lost.Token;
        _lastGranted = time.GetTimestamp();
        _renewals = Task.Run(RenewAsync, CancellationToken.None);
    }

    /// <summary>
    /// Starts keeping a lease just granted (its patience counts from now). <paramref name="renew"/> answers true when the
    /// lease was renewed, false when it was refused; an exception means the holder could not tell, and it asks again at
    /// the next tick while its patience lasts.
    /// </summary>
    public static LeaseKeeper Start(string what, TimeSpan every, TimeSpan patience, Func<CancellationToken, Task<bool>> renew, TimeProvider time, ILogger logger,
        CancellationToken stopping = default) => new(what, every, patience, renew, time, logger, stopping);

    /// <summary>
    /// Cancelled when the lease is lost (refused, or not renewed in time), when the work is stopping, and once the keeper is
    /// disposed: the work must stop.
    /// </summary>
    public CancellationToken Lost { get; }

    /// <summary>Whether the lease still counts as held now: not lost, and renewed within its patience.</summary>
    public bool Held => !Lost.IsCancellationRequested && _time.GetElapsedTime(Volatile.Read(ref _lastGranted)) < _patience;

    private async Task RenewAsync()
    {
        // Ticks at fixed times from the start, whatever each renewal takes: a slow answer does not push the next one later.
        using var ticks = new PeriodicTimer(_every, _time);
        while (true)
        {
            try
            {
                if (!await ticks.WaitForNextTickAsync(_stop.Token))
                {
                    return;
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            if (!Held)
            {
                return;
            }
            var asked = _time.GetTimestamp();
            try
            {
                // Bounded by what is left of the patience: a renewal that never answers (a lost connection) must not hold
                // the holder past the point where its work has to stop.
                var left = _patience - _time.GetElapsedTime(Volatile.Read(ref _lastGranted));
                if (!await _renew(_stop.Token).WaitAsync(left > TimeSpan.Zero ? left : TimeSpan.FromTicks(1), _time, _stop.Token))
                {
                    await LoseAsync("its renewal was refused");
                    return;
                }
                Volatile.Write(ref _lastGranted, asked);
                var remaining = _patience - _time.GetElapsedTime(asked);
                _deadline.CancelAfter(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                _logger.LogWarning("Could not renew {What} ({Reason}); asking again in {Seconds:F0} s", _what, ex.Message, _every.TotalSeconds);
            }
        }
    }

    private async Task LoseAsync(string why)
    {
        _logger.LogWarning("Lost {What}: {Why}; its work stops", _what, why);
        await _lost.CancelAsync();
    }

    /// <summary>Stops renewing (the work is done, or its term over); the lease itself is given back by its owner.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _renewals;
        await _lost.CancelAsync();
        _lost.Dispose();
        _deadline.Dispose();
        _stop.Dispose();
    }
}
