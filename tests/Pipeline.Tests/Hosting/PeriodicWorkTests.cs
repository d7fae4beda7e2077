using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Hosting;

public sealed class When_periodic_work_fails
{
    /// <summary>Fails its first passes as told, then succeeds; says when a pass ran.</summary>
    private sealed class Flaky(int failFirst, Exception failure) : PeriodicWork(TimeProvider.System, NullLogger.Instance)
    {
        private int _passes;

        public int Passes => Volatile.Read(ref _passes);

        public List<Exception> Reported { get; } = [];

        public int RecoveredAfter { get; private set; }

        protected override TimeSpan Interval => TimeSpan.FromMilliseconds(5);

        protected override string What => "A flaky pass";

        protected override Task RunOnceAsync(CancellationToken stoppingToken) =>
            Interlocked.Increment(ref _passes) <= failFirst ? Task.FromException(failure) : Task.CompletedTask;

        protected override Task OnFailedAsync(Exception failure, CancellationToken stoppingToken)
        {
            Reported.Add(failure);
            return Task.CompletedTask;
        }

        protected override Task OnRecoveredAsync(int failures, CancellationToken stoppingToken)
        {
            RecoveredAfter = failures;
            return Task.CompletedTask;
        }
    }

    public static TheoryData<Exception> Failures() =>
        [
            new InvalidOperationException("the store does not answer"),
            // A publish cancelled because the broker went away is not the service stopping.
            new OperationCanceledException("the broker went away"),
            new IOException("disk error"),
        ];

    [Theory]
    [MemberData(nameof(Failures))]
    public async Task Should_go_on_after_any_failure_and_say_when_it_works_again(Exception failure)
    {
        var work = new Flaky(failFirst: 3, failure);
        await work.StartAsync(CancellationToken.None);

        await Eventually.Until(() => Task.FromResult(work.PassesCompleted), done => done >= 2, TimeSpan.FromSeconds(30), "passes after the failures");
        await work.StopAsync(CancellationToken.None);

        Assert.Equal(3, work.Reported.Count);
        Assert.All(work.Reported, r => Assert.Same(failure, r));
        Assert.Equal(3, work.RecoveredAfter);
        Assert.Equal(0, work.FailuresInARow);
        Assert.True(work.ExecuteTask!.IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Should_end_only_when_its_service_stops()
    {
        var work = new Flaky(failFirst: int.MaxValue, new InvalidOperationException("always"));
        await work.StartAsync(CancellationToken.None);
        await Eventually.Until(() => Task.FromResult(work.FailuresInARow), n => n >= 3, TimeSpan.FromSeconds(30), "three failures in a row");
        Assert.False(work.ExecuteTask!.IsCompleted);

        await work.StopAsync(CancellationToken.None);
        Assert.True(work.ExecuteTask.IsCompletedSuccessfully);
    }

    [Fact]
    public void Should_back_off_doubling_up_to_a_ceiling()
    {
        var second = TimeSpan.FromSeconds(1);
        Assert.Equal(
            [1, 1, 2, 4, 8, 10, 10],
            new[] { 0, 1, 2, 3, 4, 5, 40 }.Select(failures => PeriodicWork.DelayAfter(failures, second).TotalSeconds));
        // A loop that runs seldom never runs more often because it failed.
        var hour = TimeSpan.FromHours(1);
        Assert.Equal(hour, PeriodicWork.DelayAfter(7, hour));
    }
}
