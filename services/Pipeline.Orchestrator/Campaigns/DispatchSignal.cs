using System.Threading.Channels;

namespace Pipeline.Orchestrator.Campaigns;

/// <summary>
/// Wakes the dispatcher when a slot may have freed or a file started waiting for one, so that a slot is
/// refilled at once rather than at the next tick. Pokes that come while one is pending merge into it.
/// </summary>
public sealed class DispatchSignal
{
    private readonly Channel<bool> _pokes = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Poke() => _pokes.Writer.TryWrite(true);

    /// <summary>Returns when poked, or after <paramref name="timeout"/>.</summary>
    public async Task WaitAsync(TimeSpan timeout, TimeProvider time, CancellationToken cancellationToken)
    {
        using var timeoutSource = new CancellationTokenSource(timeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeoutSource.Token, cancellationToken);
        try
        {
            await _pokes.Reader.ReadAsync(linked.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // The tick came first.
        }
    }
}
