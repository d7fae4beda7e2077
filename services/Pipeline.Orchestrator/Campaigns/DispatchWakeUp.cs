using MassTransit;
using Pipeline.Contracts;

namespace Pipeline.Orchestrator.Campaigns;

/// <summary>
/// Wakes the reconstruction dispatcher once a message that can fill or free a reconstruction slot has been consumed
/// (a file staged or registered straight to staged, a reconstruction done or failed, a retry, a calibration found, a
/// stall handled): the dispatcher then runs a pass at once instead of at its next tick. Kept out of the file state
/// machine, which describes the flow and nothing else, and told after the consumer finished, so that the pass sees
/// the saga's new state.
/// </summary>
public sealed class DispatchWakeUp(DispatchSignal signal) : IConsumeObserver
{
    public Task PreConsume<T>(ConsumeContext<T> context)
        where T : class => Task.CompletedTask;

    public Task PostConsume<T>(ConsumeContext<T> context)
        where T : class
    {
        if (context.Message is FileStaged or FileRegistered or FileReconstructed or ReconstructionFailed or RetryFile or CheckCalibration or FileStalled)
        {
            signal.Poke();
        }
        return Task.CompletedTask;
    }

    public Task ConsumeFault<T>(ConsumeContext<T> context, Exception exception)
        where T : class => Task.CompletedTask;
}
