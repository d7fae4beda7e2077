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
    public async Task Should_renew_on_its_own_timer_and_keep_one_token_however_long_the_work_takes()
    {
        Assert.True(await _a.HoldAsync(CancellationToken.None));
        Assert.False(await _b.HoldAsync(CancellationToken.None));
        Assert.Equal((1L, (long?)null), (_a.Token!.Value, _b.Token));

        // Nobody asks the gate again (a pass that runs for minutes): its own timer renews the lease every third of it, so
        // the lease always has most of its length ahead of it.
        for (var step = 0; step < 200; step++)
        {
            _time.Advance(TimeSpan.FromSeconds(0.5));
            var now = _time.GetUtcNow();
            await Eventually.Until(() => _store.SingletonLeases.GetAsync(Singletons.Dispatcher, CancellationToken.None), lease => lease!.ExpiresAt > now.AddSeconds(5),
                TimeSpan.FromSeconds(30), "the lease renewed ahead", lease => $"expires {lease!.ExpiresAt:O} at {now:O}");
        }
        Assert.Equal(1L, _a.Token);
        Assert.False(_a.Lost.IsCancellationRequested);
        Assert.False(await _b.HoldAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Should_stop_the_holders_work_before_its_lease_ends_when_it_cannot_renew_and_hand_it_over_after()
    {
        Assert.True(await _a.HoldAsync(CancellationToken.None));
        var lost = _a.Lost;
        // The holder's renewals are refused from now on: another holder took the lease by hand (as after a long pause).
        var taken = await _store.SingletonLeases.AcquireAsync(Singletons.Dispatcher, "someone else", TimeSpan.FromSeconds(60), _time.GetUtcNow().AddSeconds(11), CancellationToken.None);

        // Time moves in steps while the test waits: the keeper's timer may start only after a single step (a clean-clone
        // run once saw that), and then would never fire. Below 80% of the lease (8 s), so the refusal is what stops it.
        var advanced = TimeSpan.Zero;
        await Eventually.Until(() =>
        {
            if (advanced < TimeSpan.FromSeconds(7))
            {
                _time.Advance(TimeSpan.FromSeconds(0.5));
                advanced += TimeSpan.FromSeconds(0.5);
            }
            return Task.FromResult(lost.IsCancellationRequested);
        }, stopped => stopped, TimeSpan.FromSeconds(10), "the holder's work stopped", stopped => $"{stopped} after {advanced.TotalSeconds} s");
        Assert.Null(_a.Token);
        Assert.Null(_a.Fence);
        Assert.Equal(1L + 1, taken.Token);
    }

    [Fact]
    public async Task Should_count_itself_the_holder_no_longer_than_most_of_its_lease_without_a_renewal()
    {
        Assert.True(await _a.HoldAsync(CancellationToken.None));

        // A store that does not answer (or a paused process): past 80% of the lease, the holder stops counting itself one.
        _store.Dispose();
        _time.Advance(TimeSpan.FromSeconds(7.9));
        Assert.Equal(1L, _a.Token);
        _time.Advance(TimeSpan.FromSeconds(0.2));
        Assert.Null(_a.Token);
        await Eventually.Until(() => Task.FromResult(_a.Lost.IsCancellationRequested), stopped => stopped, TimeSpan.FromSeconds(10), "the holder's work stopped", stopped => $"{stopped}");
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
