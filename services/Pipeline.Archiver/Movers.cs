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
        Task<bool> TakeAsync(CancellationToken token) => store.TryAcquireMoverAsync(dataset, holder, flow.MoversLimit, time.GetUtcNow(), lease, token);
        await Admission.WaitAsync(TakeAsync, TimeSpan.FromSeconds(flow.Configured.AdmissionPollSeconds), time,
            () => logger.LogInformation("Waiting for a mover for {Dataset} ({Limit} in use or the dataset's is busy)", dataset, flow.MoversLimit), cancellationToken);
        var inUse = (await store.ListMoversAsync(time.GetUtcNow(), cancellationToken)).Count;
        int seen;
        while ((seen = Volatile.Read(ref _maxInUse)) < inUse && Interlocked.CompareExchange(ref _maxInUse, inUse, seen) != seen)
        {
        }
        // Renewed every third of the lease; writes stop when a renewal is refused or none succeeded for most of it.
        var keeper = LeaseKeeper.Start($"the mover of {dataset}", lease / 3, lease * 0.8, TakeAsync, time, logger, cancellationToken);
        return new Mover(dataset, keeper, async () => await store.ReleaseMoverAsync(dataset, holder, CancellationToken.None), logger);
    }

    /// <summary>A dataset's archive writer, held until disposed.</summary>
    public sealed class Mover(string dataset, LeaseKeeper keeper, Func<Task> release, ILogger logger) : IAsyncDisposable
    {
        public string Dataset => dataset;

        /// <summary>Cancelled if the lease could not be renewed: another archiver may take the dataset, so writing must stop.</summary>
        public CancellationToken Token => keeper.Lost;

        public async ValueTask DisposeAsync()
        {
            await keeper.DisposeAsync();
            try
            {
                await release();
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Could not give back the mover of {Dataset}; its lease runs out instead", dataset);
            }
        }
    }
}
