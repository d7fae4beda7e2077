using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Flow;
using Pipeline.Production.State;

namespace Pipeline.Archiver;

/// <summary>
/// The archive writers ("movers") shared by every archiver instance through the store: at most
/// <see cref="FlowControl.MoversLimit"/> at once, and at most one per dataset, so that a dataset's files reach
/// the archive one after the other, in order. A mover is a lease renewed while it writes; a dead archiver's
/// mover is free again once its lease runs out. Adding archiver instances never adds movers.
/// </summary>
public sealed class Movers(IFlowStore store, FlowControl flow, TimeProvider time, IOptions<PipelineOptions> pipeline, ILogger<Movers> logger)
{
    private int _maxInUse;

    /// <summary>The most movers held at once (across all instances) that this process saw when it took one.</summary>
    public int MaxInUse => Volatile.Read(ref _maxInUse);

    /// <summary>Waits for the dataset's mover and returns it; dispose it to give it back.</summary>
    public async Task<Mover> AcquireAsync(string dataset, CancellationToken cancellationToken)
    {
        // Unique per acquisition: two messages of one dataset in this process must not share a mover.
        var holder = $"{pipeline.Value.EffectiveInstanceName}#{Guid.NewGuid().ToString("N")[..8]}";
        var lease = TimeSpan.FromSeconds(flow.Configured.MoverLeaseSeconds);
        var waited = false;
        while (!await store.TryAcquireMoverAsync(dataset, holder, flow.MoversLimit, time.GetUtcNow(), lease, cancellationToken))
        {
            if (!waited)
            {
                logger.LogInformation("Waiting for a mover for {Dataset} ({Limit} in use or the dataset's is busy)", dataset, flow.MoversLimit);
                waited = true;
            }
            await Task.Delay(TimeSpan.FromSeconds(flow.Configured.AdmissionPollSeconds), time, cancellationToken);
        }
        var inUse = (await store.ListMoversAsync(time.GetUtcNow(), cancellationToken)).Count;
        int seen;
        while ((seen = Volatile.Read(ref _maxInUse)) < inUse && Interlocked.CompareExchange(ref _maxInUse, inUse, seen) != seen)
        {
        }
        return new Mover(store, flow, time, logger, dataset, holder, lease, cancellationToken);
    }

    public sealed class Mover : IAsyncDisposable
    {
        private readonly IFlowStore _store;
        private readonly FlowControl _flow;
        private readonly TimeProvider _time;
        private readonly ILogger _logger;
        private readonly string _holder;
        private readonly CancellationTokenSource _lost;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _renewal;

        internal Mover(IFlowStore store, FlowControl flow, TimeProvider time, ILogger logger, string dataset, string holder, TimeSpan lease, CancellationToken cancellationToken)
        {
            _store = store;
            _flow = flow;
            _time = time;
            _logger = logger;
            Dataset = dataset;
            _holder = holder;
            _lost = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            _renewal = RenewAsync(lease);
        }

        public string Dataset { get; }

        /// <summary>Cancelled if the lease could not be renewed: another archiver may take the dataset, so writing must stop.</summary>
        public CancellationToken Token => _lost.Token;

        private async Task RenewAsync(TimeSpan lease)
        {
            try
            {
                while (true)
                {
                    await Task.Delay(lease / 3, _time, _stop.Token);
                    if (!await _store.TryAcquireMoverAsync(Dataset, _holder, _flow.MoversLimit, _time.GetUtcNow(), lease, _stop.Token))
                    {
                        _logger.LogWarning("Lost the mover of {Dataset}; stopping its writes", Dataset);
                        await _lost.CancelAsync();
                        return;
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (Exception ex)
            {
                _logger.LogWarning(ex, "Could not renew the mover of {Dataset}; stopping its writes", Dataset);
                await _lost.CancelAsync();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _renewal;
            try
            {
                await _store.ReleaseMoverAsync(Dataset, _holder, CancellationToken.None);
            }
            catch (Exception ex)
            {
                _logger.LogWarning(ex, "Could not give back the mover of {Dataset}; its lease runs out instead", Dataset);
            }
            _lost.Dispose();
            _stop.Dispose();
        }
    }
}
