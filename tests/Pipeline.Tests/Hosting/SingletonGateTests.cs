using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Control;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Hosting;

/// <summary>Two instances' gates on one singleton, over a real SQLite store, on a clock the test moves.</summary>
public sealed class When_two_instances_want_the_same_singleton : IDisposable
{
    private readonly TempDirectory _folder = new();
    private readonly StoreBackend _store;
    private readonly FakeTimeProvider _time = new(DateTimeOffset.Parse("2026-12-03T12:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
    private readonly ISingletonGate _a;
    private readonly ISingletonGate _b;

    public When_two_instances_want_the_same_singleton()
    {
        _store = StoreBackend.Sqlite(Path.Combine(_folder.Path, "pipeline.db"));
        var options = new SingletonOptions { LeaseSeconds = 10, StandbySeconds = 1 };
        _a = TestSingletons.Over(_store, _time, "a", options).For(Singletons.Dispatcher);
        _b = TestSingletons.Over(_store, _time, "b", options).For(Singletons.Dispatcher);
    }

    [Fact]
    public async Task Should_let_one_hold_it_and_hand_it_over_only_after_the_holder_stopped_counting_itself_the_holder()
    {
        Assert.True(await _a.HoldAsync(CancellationToken.None));
        Assert.False(await _b.HoldAsync(CancellationToken.None));
        Assert.Equal((1L, (long?)null), (_a.Token!.Value, _b.Token));

        // The holder renews once a third of the lease has passed.
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.True(await _a.HoldAsync(CancellationToken.None));
        Assert.Equal(_time.GetUtcNow().AddSeconds(10), (await _store.SingletonLeases.GetAsync(Singletons.Dispatcher, CancellationToken.None))!.ExpiresAt);

        // Then it stops asking (it hangs, or dies). Until its lease runs out nobody else gets the work.
        _time.Advance(TimeSpan.FromSeconds(9));
        Assert.False(await _b.HoldAsync(CancellationToken.None));
        Assert.Equal(1L, _a.Token);

        // Once it has: the holder no longer counts itself the holder, and the other takes over with the next token.
        _time.Advance(TimeSpan.FromSeconds(1.5));
        Assert.Null(_a.Token);
        Assert.True(await _b.HoldAsync(CancellationToken.None));
        Assert.Equal(2L, _b.Token);
        Assert.False(await _a.HoldAsync(CancellationToken.None));
        Assert.Null(_a.Token);
    }

    [Fact]
    public async Task Should_hand_it_over_at_once_when_the_holder_gives_it_up()
    {
        Assert.True(await _a.HoldAsync(CancellationToken.None));
        Assert.False(await _b.HoldAsync(CancellationToken.None));

        await _a.ReleaseAsync(CancellationToken.None);

        Assert.Null(_a.Token);
        // An instance in standby asks again after StandbySeconds, not on every pass.
        Assert.False(await _b.HoldAsync(CancellationToken.None));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await _b.HoldAsync(CancellationToken.None));
        Assert.Equal(2L, _b.Token);
    }

    [Fact]
    public async Task Should_run_a_singletons_passes_on_the_holder_only()
    {
        using var stop = new CancellationTokenSource();
        var gates = new[] { "a", "b" }.Select(name => TestSingletons.Over(_store, TimeProvider.System, name).For("counting")).ToList();
        var works = gates.Select(gate => new Counting(gate)).ToList();
        foreach (var work in works)
        {
            await work.StartAsync(stop.Token);
        }
        await Eventually.Until(() => Task.FromResult(works.Sum(w => w.Passes)), passes => passes >= 20, TimeSpan.FromSeconds(30), "passes", passes => $"{passes}");

        var holder = works.Single(w => w.Passes > 0);
        Assert.NotNull(holder.Gate.Token);
        // A clean stop gives the lease up: the other instance carries on at once, with the next token.
        await holder.StopAsync(CancellationToken.None);
        var other = works.Single(w => w != holder);
        await Eventually.Until(() => Task.FromResult(other.Passes), passes => passes > 0, TimeSpan.FromSeconds(10), "passes on the other instance", passes => $"{passes}");
        Assert.Equal(2L, other.Gate.Token);
        await other.StopAsync(CancellationToken.None);
    }

    public void Dispose()
    {
        _store.Dispose();
        _folder.Dispose();
    }

    private sealed class Counting(ISingletonGate gate) : PeriodicWork(TimeProvider.System, NullLogger.Instance)
    {
        private int _passes;

        public ISingletonGate Gate => gate;

        public int Passes => Volatile.Read(ref _passes);

        protected override ISingletonGate Singleton => gate;

        protected override TimeSpan Interval => TimeSpan.FromMilliseconds(20);

        protected override string What => "Counting";

        protected override Task RunOnceAsync(CancellationToken stoppingToken)
        {
            Interlocked.Increment(ref _passes);
            return Task.CompletedTask;
        }
    }
}
