using System.Collections.Concurrent;
using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Telemetry;

namespace Pipeline.Orchestrator.Campaigns;

/// <summary>
/// The reconstruction slots of the live worker instances, as their heartbeats on the bus say: every orchestrator keeps
/// its own count, so that whichever holds the dispatcher knows how many slots there are without reading the monitor's
/// records. An instance not heard from for <see cref="Silence"/> counts for nothing.
/// </summary>
public sealed class LiveSlots(TimeProvider time)
{
    /// <summary>Instances that have not reported for this long are taken as gone: their slots do not count.</summary>
    public static readonly TimeSpan Silence = TimeSpan.FromSeconds(60);

    private readonly ConcurrentDictionary<string, (int Slots, DateTimeOffset HeardAt)> _instances = new(StringComparer.Ordinal);

    /// <summary>Notes an instance's heartbeat, as heard now (by this host's clock: the sender's may differ).</summary>
    public void Heard(InstanceHeartbeat beat)
    {
        var slots = (beat.Load ?? []).Where(l => l.Stage == PipelineMetrics.Reconstruction).Sum(l => l.Capacity);
        _instances[beat.Instance] = (slots, time.GetUtcNow());
    }

    /// <summary>The slots of every instance heard from lately.</summary>
    public long Count
    {
        get
        {
            var now = time.GetUtcNow();
            foreach (var gone in _instances.Where(i => now - i.Value.HeardAt >= Silence).Select(i => i.Key).ToList())
            {
                _instances.TryRemove(gone, out _);
            }
            return _instances.Values.Sum(i => (long)i.Slots);
        }
    }
}

/// <summary>Hears every instance's heartbeat, for <see cref="LiveSlots"/>.</summary>
public sealed class LiveSlotsConsumer(LiveSlots slots) : IConsumer<InstanceHeartbeat>
{
    public Task Consume(ConsumeContext<InstanceHeartbeat> context)
    {
        slots.Heard(context.Message);
        return Task.CompletedTask;
    }
}

/// <summary>
/// A queue per orchestrator instance, removed when it stops: every orchestrator must hear every heartbeat (any of them
/// may hold the dispatcher next), so they do not share one. Heartbeats are repeated every few seconds; one lost with the
/// queue is made good by the next.
/// </summary>
public sealed class LiveSlotsConsumerDefinition : ConsumerDefinition<LiveSlotsConsumer>
{
    public LiveSlotsConsumerDefinition(Microsoft.Extensions.Options.IOptions<PipelineOptions> pipeline)
    {
        Endpoint(e =>
        {
            e.Name = InstanceQueues.Name(pipeline.Value.EffectiveInstanceName, "orchestrator-slots");
            e.Temporary = true;
        });
    }
}
