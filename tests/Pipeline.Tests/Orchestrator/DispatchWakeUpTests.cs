using MassTransit;
using MassTransit.Testing;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.Orchestrator.Campaigns;

namespace Pipeline.Tests.Orchestrator;

public sealed class When_a_file_is_staged
{
    private sealed class Staged : IConsumer<FileStaged>
    {
        public Task Consume(ConsumeContext<FileStaged> context) => Task.CompletedTask;
    }

    [Fact]
    public async Task Should_wake_the_dispatcher_once_the_message_is_consumed()
    {
        var services = new ServiceCollection();
        services.AddSingleton<DispatchSignal>();
        services.AddConsumeObserver<DispatchWakeUp>();
        services.AddMassTransitTestHarness(bus => bus.AddConsumer<Staged>());
        await using var provider = services.BuildServiceProvider(validateScopes: true);
        var harness = provider.GetRequiredService<ITestHarness>();
        await harness.Start();
        var signal = provider.GetRequiredService<DispatchSignal>();

        await harness.Bus.Publish(new FileStaged(Guid.NewGuid(), 1000, "physics", "prompt", 1, "prompt/raw.raw", 1234, "0a0b0c0d"));

        // Waited for up to half a minute, not for the harness's short inactivity window: a loaded machine is slow to deliver.
        using var consumedWithin = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        Assert.True(await harness.Consumed.Any<FileStaged>(consumedWithin.Token));
        // The dispatcher's wait ends on the poke, long before its own (here: ten-minute) tick.
        var woken = signal.WaitAsync(TimeSpan.FromMinutes(10), TimeProvider.System, CancellationToken.None);
        Assert.Same(woken, await Task.WhenAny(woken, Task.Delay(TimeSpan.FromMinutes(2))));
    }
}
