using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// Follows every batch job this worker has in flight with one squeue call per poll, however many there are, and tells
/// each waiting job its end as Slurm reports it. A job Slurm no longer lists, and that was never seen ending, is looked
/// for during <see cref="SlurmOptions.MissingSeconds"/> and then reported <see cref="LostState"/>: the site lost it.
/// </summary>
public sealed class SlurmJobWatch(SlurmClient slurm, IOptions<SlurmOptions> options, TimeProvider time, ILogger<SlurmJobWatch> logger) : PeriodicWork(time, logger)
{
    /// <summary>The state given to a job the cluster stopped listing before it was seen ending.</summary>
    public const string LostState = "LOST";

    private readonly ConcurrentDictionary<long, Watched> _jobs = new();
    private readonly ConcurrentDictionary<long, byte> _seen = new();
    private readonly SemaphoreSlim _added = new(0);

    /// <summary>Whether this process follows or followed the job (a job it need not adopt).</summary>
    public bool Knows(long id) => _seen.ContainsKey(id);

    /// <summary>Forgets the jobs Slurm no longer lists that this process is done with.</summary>
    public void ForgetAllBut(IReadOnlyCollection<long> listed)
    {
        var keep = listed.ToHashSet();
        foreach (var id in _seen.Keys.Where(id => !keep.Contains(id) && !_jobs.ContainsKey(id)))
        {
            _seen.TryRemove(id, out _);
        }
    }

    /// <summary>The id of the job of this name that this process follows, or null.</summary>
    public long? IdOf(string name) => _jobs.FirstOrDefault(p => p.Value.Name == name) is { Value: not null } found ? found.Key : null;

    /// <summary>The jobs followed now that Slurm last reported waiting in its queue, with their campaigns.</summary>
    public IReadOnlyList<(long Id, string Campaign)> Pending =>
        [.. _jobs.Where(p => p.Value.LastState == "PENDING").Select(p => (p.Key, p.Value.Campaign))];

    /// <summary>Notes why this system cancelled a job, for the reason of its end.</summary>
    public void NoteCancelled(long id, string why)
    {
        if (_jobs.TryGetValue(id, out var watched))
        {
            watched.CancelledBecause = why;
        }
    }

    /// <summary>Waits for the job's end as Slurm reports it.</summary>
    public async Task<SlurmJob> WaitAsync(long id, string name, CancellationToken cancellationToken, string campaign = "")
    {
        var watched = _jobs.GetOrAdd(id, _ => new Watched(name, campaign));
        _seen.TryAdd(id, 0);
        _added.Release();
        try
        {
            return await watched.End.Task.WaitAsync(cancellationToken);
        }
        finally
        {
            _jobs.TryRemove(id, out _);
        }
    }

    protected override TimeSpan Interval => TimeSpan.FromSeconds(options.Value.PollSeconds);

    protected override string What => "Following the batch jobs";

    // The jobs keep running meanwhile, their leases renewed by the worker: looked at again at the next poll.
    protected override bool IsExpectedFailure(Exception failure) => SlurmClient.IsExpectedFailure(failure);

    protected override async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        if (!_jobs.IsEmpty)
        {
            Update(await slurm.ListAsync(stoppingToken));
        }
    }

    /// <summary>With no job to follow, the watch sleeps until one is added.</summary>
    protected override Task PauseAsync(TimeSpan delay, CancellationToken stoppingToken) =>
        _jobs.IsEmpty ? _added.WaitAsync(stoppingToken) : base.PauseAsync(delay, stoppingToken);

    private void Update(IReadOnlyList<SlurmJob> listed)
    {
        var byId = listed.ToDictionary(j => j.Id);
        foreach (var (id, watched) in _jobs)
        {
            if (byId.TryGetValue(id, out var job))
            {
                watched.LastState = job.State;
                watched.Missing.Reset();
                if (job.HasEnded)
                {
                    watched.End.TrySetResult(watched.CancelledBecause is { } why && job.State == "CANCELLED" ? job with { Reason = why } : job);
                }
            }
            else if (!watched.Missing.IsRunning)
            {
                watched.Missing.Start();
            }
            else if (watched.Missing.Elapsed > TimeSpan.FromSeconds(options.Value.MissingSeconds))
            {
                watched.End.TrySetResult(new SlurmJob(id, watched.Name, LostState, $"not listed by Slurm for {options.Value.MissingSeconds}s", 0, 0, null, null, ""));
            }
        }
    }

    public override void Dispose()
    {
        _added.Dispose();
        base.Dispose();
    }

    private sealed class Watched(string name, string campaign)
    {
        public string Name { get; } = name;

        public string Campaign { get; } = campaign;

        public string? CancelledBecause { get; set; }

        public TaskCompletionSource<SlurmJob> End { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Stopwatch Missing { get; } = new();

        public string LastState { get; set; } = "SUBMITTED";
    }
}
