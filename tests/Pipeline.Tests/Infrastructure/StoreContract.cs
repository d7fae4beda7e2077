using MongoDB.Bson;
using MongoDB.Bson.Serialization;
using MongoDB.Driver;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Infrastructure;

/// <summary>
/// What every state store must do, whatever the database: one suite, run against each implementation.
/// A store whose server is not at hand skips every test with the reason (SkippableFact), never passes it.
/// </summary>
public abstract class StoreContract : IAsyncLifetime
{
    private StoreBackend? _created;

    protected StoreBackend Store => _created ?? throw new InvalidOperationException("The store is not created yet.");

    /// <summary>A new, empty store for one test.</summary>
    protected abstract Task<StoreBackend> CreateStoreAsync();

    protected virtual Task DropStoreAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => _created = await CreateStoreAsync();

    public async Task DisposeAsync() => await DropStoreAsync();

    private static FileState WithState(FileState saga, string state)
    {
        saga.CurrentState = state;
        return saga;
    }

    private static FileState Saga(int run, string name, string state = "Staging", string campaign = "prompt", string stream = "physics") => new()
    {
        CorrelationId = Guid.NewGuid(),
        CurrentState = state,
        Campaign = campaign,
        Run = run,
        Stream = stream,
        LogicalName = name,
        UpdatedAt = DateTimeOffset.UtcNow,
    };

    [SkippableFact]
    public async Task Should_keep_everything_a_saga_holds_and_its_history_in_order()
    {
        var saga = Saga(12, "raw/run12/a.raw");
        saga.Size = 1_000_000_007;
        saga.Adler32 = "0badcafe";
        saga.Attempt = 2;
        saga.Deadline = DateTimeOffset.UnixEpoch.AddDays(20_000);
        saga.Outputs.Add(new TrackedOutput { Output = new OutputFile("o1", "muon", "jobs/o1.evt", 10, "00000001", 3, 12, 4), MergedName = "m1" });
        saga.LogNames.Add("logs/a.log");
        for (var i = 0; i < 5; i++)
        {
            saga.Record(DateTimeOffset.UnixEpoch.AddSeconds(i), $"State{i}", $"Event{i}", i == 4 ? null : $"detail {i}");
        }
        await Store.Sagas.InsertAsync(saga, CancellationToken.None);

        var loaded = (await Store.Sagas.LoadAsync(saga.CorrelationId, CancellationToken.None))!;

        Assert.Equal(["State0", "State1", "State2", "State3", "State4"], loaded.History.Select(h => h.State));
        Assert.Equal(DateTimeOffset.UnixEpoch.AddSeconds(3), loaded.History[3].At);
        Assert.Null(loaded.History[4].Detail);
        Assert.Equal((1_000_000_007L, "0badcafe", 2, saga.Deadline), (loaded.Size, loaded.Adler32, loaded.Attempt, loaded.Deadline));
        var output = Assert.Single(loaded.Outputs);
        Assert.Equal(("muon", 12, 4, "m1"), (output.Output.Dataset, output.Output.Run, output.Output.Section, output.MergedName));
        Assert.Equal(["logs/a.log"], loaded.LogNames);
        Assert.Null(await Store.Sagas.LoadAsync(Guid.NewGuid(), CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_bulk_load_sagas_that_list_and_count_as_if_inserted_one_by_one_and_refuse_an_existing_id()
    {
        var sagas = Enumerable.Range(0, 25_000).Select(i => Saga(1 + (i / 100), $"raw/bulk/f{i:D5}.raw", i % 3 == 0 ? "Archived" : "Staging")).ToList();

        await Store.Sagas.BulkInsertAsync(sagas, CancellationToken.None);

        var counts = await Store.Sagas.CountByStateAsync(CancellationToken.None);
        Assert.Equal([new StateCount("prompt", "Archived", 8_334), new StateCount("prompt", "Staging", 16_666)], counts);
        Assert.Equal("raw/bulk/f12345.raw", (await Store.Sagas.LoadAsync(sagas[12_345].CorrelationId, CancellationToken.None))!.LogicalName);
        var page = await Store.Sagas.ListAsync(new FileQuery(State: "Archived", RunFrom: 10, RunTo: 10, Limit: 100), CancellationToken.None);
        Assert.Equal(34, page.Files.Count);

        await Assert.ThrowsAsync<ConcurrencyConflictException>(() =>
            Store.Sagas.BulkInsertAsync([Saga(999, "raw/bulk/new.raw"), sagas[7]], CancellationToken.None));
        // The new saga before the duplicate may be stored (an ordered batch) or not (one transaction); nothing else changed.
        Assert.Equal(sagas.Count, (await Store.Sagas.CountByStateAsync(CancellationToken.None)).Sum(c => c.Files) - (await Store.Sagas.ListAsync(new FileQuery(RunFrom: 999, Limit: 10), CancellationToken.None)).Files.Count);
    }

    [SkippableFact]
    public async Task Should_group_failed_files_by_signature_and_list_them_by_it()
    {
        FileState Failed(int run, string name, string signature, string release, string campaign = "prompt")
        {
            var saga = Saga(run, name, "Failed", campaign);
            saga.FailureStage = "reconstruction";
            saga.FailureSignature = signature;
            saga.FailureRelease = release;
            saga.FailureReason = $"exit code 3 in {name}";
            return saga;
        }
        await Store.Sagas.InsertAsync(Failed(1, "a", "reconstruction exit 3: ERROR bad record <n>", "r1"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Failed(2, "b", "reconstruction exit 3: ERROR bad record <n>", "r1"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Failed(3, "c", "reconstruction exit 3: ERROR bad record <n>", "r1"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Failed(3, "d", "reconstruction exit 3: ERROR bad record <n>", "r2"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Failed(4, "e", "reconstruction exit 139: Segmentation fault", "r1", campaign: "reprocessing-2"), CancellationToken.None);
        var old = Saga(5, "f", "Failed");
        old.FailureReason = "from before classification";
        await Store.Sagas.InsertAsync(old, CancellationToken.None);
        var recovered = Failed(6, "g", "reconstruction exit 3: ERROR bad record <n>", "r1");
        recovered.CurrentState = "Archived";
        await Store.Sagas.InsertAsync(recovered, CancellationToken.None);

        var groups = await Store.Sagas.CountFailuresAsync(null, CancellationToken.None);

        Assert.Equal(
            [("prompt", "reconstruction exit 3: ERROR bad record <n>", "r1", 3L), ("prompt", "reconstruction exit 3: ERROR bad record <n>", "r2", 1L),
             ("prompt", "unclassified", null, 1L), ("reprocessing-2", "reconstruction exit 139: Segmentation fault", "r1", 1L)],
            groups.Select(g => (g.Campaign, g.Signature, g.Release, g.Files)));
        Assert.Equal("exit code 3 in a", groups[0].ExampleReason);
        Assert.Equal(2, (await Store.Sagas.CountFailuresAsync("prompt", CancellationToken.None)).Count(g => g.Stage == "reconstruction"));
        var listed = await Store.Sagas.ListAsync(new FileQuery(State: "Failed", FailureSignature: "reconstruction exit 3: ERROR bad record <n>"), CancellationToken.None);
        Assert.Equal(["a", "b", "c", "d"], listed.Files.Select(f => f.LogicalName));
    }

    [SkippableFact]
    public async Task Should_add_up_each_stages_throughput_per_campaign_per_minute_and_per_hour()
    {
        var nine = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);
        await Task.WhenAll(Enumerable.Range(0, 10).Select(i => Store.Activity.RecordAsync("staging", "prompt", nine.AddSeconds(i * 15), 100, CancellationToken.None)));
        await Store.Activity.RecordAsync("staging", "reprocess", nine.AddSeconds(59), 3, CancellationToken.None);
        await Store.Activity.RecordAsync("archive", "prompt", nine.AddMinutes(59).AddSeconds(59), 5000, CancellationToken.None);
        await Store.Activity.RecordAsync("staging", "prompt", nine.AddHours(1), 7, CancellationToken.None);
        await Store.Activity.RecordAsync("staging", "prompt", nine.AddHours(-2), 1, CancellationToken.None);

        var hours = await Store.Activity.ListActivityAsync(ThroughputResolution.Hour, nine.AddMinutes(30), CancellationToken.None);
        var minutes = await Store.Activity.ListActivityAsync(ThroughputResolution.Minute, nine.AddSeconds(30), CancellationToken.None);

        Assert.Equal(
            [("archive", "prompt", nine, 1L, 5000L), ("staging", "prompt", nine, 10L, 1000L), ("staging", "reprocess", nine, 1L, 3L), ("staging", "prompt", nine.AddHours(1), 1L, 7L)],
            hours.Select(a => (a.Stage, a.Campaign, a.At, a.Files, a.Bytes)));
        Assert.Equal(
            [("staging", "prompt", nine, 4L, 400L), ("staging", "reprocess", nine, 1L, 3L), ("staging", "prompt", nine.AddMinutes(1), 4L, 400L),
                ("staging", "prompt", nine.AddMinutes(2), 2L, 200L), ("archive", "prompt", nine.AddMinutes(59), 1L, 5000L)],
            minutes.Where(a => a.At < nine.AddHours(1)).Select(a => (a.Stage, a.Campaign, a.At, a.Files, a.Bytes)));
    }

    [SkippableFact]
    public async Task Should_keep_each_resolution_of_the_throughput_for_its_window_only()
    {
        var start = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);
        await Store.Activity.RecordAsync("merge", "prompt", start, 1, CancellationToken.None);
        // Just inside both windows, then a step past the minutes' window, then past the hours'.
        await Store.Activity.RecordAsync("merge", "prompt", start + ThroughputWindow.Minutes - TimeSpan.FromMinutes(1), 1, CancellationToken.None);
        var minutesKept = await Store.Activity.ListActivityAsync(ThroughputResolution.Minute, start, CancellationToken.None);
        await Store.Activity.RecordAsync("merge", "prompt", start + ThroughputWindow.Minutes, 1, CancellationToken.None);
        var minutesDropped = await Store.Activity.ListActivityAsync(ThroughputResolution.Minute, start, CancellationToken.None);
        await Store.Activity.RecordAsync("merge", "prompt", start + ThroughputWindow.Hours, 1, CancellationToken.None);
        var hours = await Store.Activity.ListActivityAsync(ThroughputResolution.Hour, start, CancellationToken.None);

        Assert.Equal(2, minutesKept.Count);
        if (Store.MongoContext is null)
        {
            // SQLite drops a bucket as soon as it leaves the window; MongoDB's TTL monitor does it within a minute or so.
            Assert.Equal([start + ThroughputWindow.Minutes - TimeSpan.FromMinutes(1), start + ThroughputWindow.Minutes], minutesDropped.Select(a => a.At));
            Assert.DoesNotContain(hours, a => a.At == start);
        }
        Assert.Contains(hours, a => a.At == start + ThroughputWindow.Hours);
    }

    [SkippableFact]
    public async Task Should_keep_each_instances_latest_heartbeat()
    {
        var start = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);
        InstanceRecord Beat(string instance, int seconds, int busy) =>
            new(instance, "reconstruction", "node-a", start, start.AddSeconds(seconds), [new StageLoad("reconstruction", busy, 8)]);
        await Store.Health.RecordHeartbeatAsync(Beat("recon-1", 30, 1), CancellationToken.None);
        await Store.Health.RecordHeartbeatAsync(Beat("recon-1", 45, 7), CancellationToken.None);
        await Store.Health.RecordHeartbeatAsync(Beat("recon-1", 40, 3), CancellationToken.None);
        await Store.Health.RecordHeartbeatAsync(new InstanceRecord("api-1", "api", "node-b", start, start.AddSeconds(5), []), CancellationToken.None);

        var instances = await Store.Health.ListInstancesAsync(CancellationToken.None);

        Assert.Equal([("api-1", start.AddSeconds(5)), ("recon-1", start.AddSeconds(45))], instances.Select(i => (i.Instance, i.LastSeenAt)));
        Assert.Equal(new StageLoad("reconstruction", 7, 8), Assert.Single(instances[1].Load));
        Assert.Empty(instances[0].Load);
    }

    [SkippableFact]
    public async Task Should_raise_an_alert_once_keep_it_fresh_and_resolve_it()
    {
        var at = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);

        Assert.True(await Store.Health.RaiseAlertAsync("disk-low:cache", "disk-low", "warning", "5 GiB free", at, CancellationToken.None));
        Assert.False(await Store.Health.RaiseAlertAsync("disk-low:cache", "disk-low", "warning", "4 GiB free", at.AddMinutes(1), CancellationToken.None));
        Assert.True(await Store.Health.RaiseAlertAsync("instance-silent:x", "instance-silent", "critical", "silent", at.AddMinutes(2), CancellationToken.None));
        var active = await Store.Health.ListAlertsAsync(activeOnly: true, 10, CancellationToken.None);
        Assert.Equal(["instance-silent:x", "disk-low:cache"], active.Select(a => a.Key));
        Assert.Equal(("4 GiB free", at, at.AddMinutes(1)), (active[1].Message, active[1].RaisedAt, active[1].LastSeenAt));

        var resolved = await Store.Health.ResolveAlertAsync("disk-low:cache", at.AddMinutes(3), CancellationToken.None);
        Assert.Equal(("disk-low:cache", at.AddMinutes(3)), (resolved!.Key, resolved.ResolvedAt));
        Assert.Null(await Store.Health.ResolveAlertAsync("disk-low:cache", at.AddMinutes(4), CancellationToken.None));
        Assert.True(await Store.Health.RaiseAlertAsync("disk-low:cache", "disk-low", "warning", "again", at.AddMinutes(5), CancellationToken.None));

        var all = await Store.Health.ListAlertsAsync(activeOnly: false, 10, CancellationToken.None);
        Assert.Equal([("disk-low:cache", true), ("instance-silent:x", true), ("disk-low:cache", false)], all.Select(a => (a.Key, a.Active)));
        Assert.Equal(at.AddMinutes(3), all[2].ResolvedAt);
        Assert.Equal(2, (await Store.Health.ListAlertsAsync(activeOnly: true, 10, CancellationToken.None)).Count);
    }

    [SkippableFact]
    public async Task Should_add_run_times_to_a_campaigns_buckets_in_place()
    {
        await Store.RunTimes.AddAsync("prompt", new Dictionary<int, long> { [40] = 3, [44] = 1 }, CancellationToken.None);
        await Store.RunTimes.AddAsync("prompt", new Dictionary<int, long> { [40] = 2 }, CancellationToken.None);
        await Store.RunTimes.AddAsync("reprocessing-2", new Dictionary<int, long> { [12] = 7 }, CancellationToken.None);

        var prompt = await Store.RunTimes.GetAsync("prompt", CancellationToken.None);
        Assert.Equal([(40, 5L), (44, 1L)], prompt.Buckets.OrderBy(b => b.Key).Select(b => (b.Key, b.Value)));
        Assert.Equal(0, (await Store.RunTimes.GetAsync("unknown", CancellationToken.None)).Files);
    }

    [SkippableFact]
    public async Task Should_give_a_singleton_lease_to_one_holder_at_a_time_with_a_token_that_grows_with_each_new_holder()
    {
        var leases = Store.SingletonLeases;
        var minute = TimeSpan.FromMinutes(1);
        // MongoDB measures expiry on its own clock; the times passed matter to SQLite only, and move forward as real time does.
        Task<SingletonLease> Acquire(string holder, TimeSpan duration) => leases.AcquireAsync("dispatcher", holder, duration, DateTimeOffset.UtcNow, CancellationToken.None);

        Assert.Null(await leases.GetAsync("dispatcher", CancellationToken.None));
        Assert.Equal(("a", 1L), Holder(await Acquire("a", minute)));
        Assert.Equal(("a", 1L), Holder(await Acquire("b", minute)));
        Assert.Equal(("a", 1L), Holder(await Acquire("a", minute)));

        // Given up with a token it no longer has: nothing; with its own: free at once.
        await leases.ReleaseAsync("dispatcher", "a", 7, DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal(("a", 1L), Holder(await Acquire("b", minute)));
        await leases.ReleaseAsync("dispatcher", "a", 1, DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal(("b", 2L), Holder(await Acquire("b", minute)));

        // A lease that runs out passes to the next who asks, with the next token; its old holder asking again is a new term.
        Assert.Equal(("b", 2L), Holder(await Acquire("b", TimeSpan.Zero)));
        await Eventually.Until(() => Acquire("c", minute), lease => lease.Holder == "c", TimeSpan.FromSeconds(10), "the lease passed to c", lease => lease.Holder);
        Assert.Equal(("c", 3L), Holder((await leases.GetAsync("dispatcher", CancellationToken.None))!));
        await Acquire("c", TimeSpan.Zero);
        await Eventually.Until(() => Acquire("c", minute), lease => lease.Token == 4, TimeSpan.FromSeconds(10), "c's new term", lease => $"{lease.Holder} {lease.Token}");

        await leases.AcquireAsync("watchdog", "a", minute, DateTimeOffset.UtcNow, CancellationToken.None);
        Assert.Equal([("dispatcher", "c"), ("watchdog", "a")], (await leases.ListAsync(CancellationToken.None)).Select(l => (l.Name, l.Holder)));
        Assert.True((await leases.GetAsync("watchdog", CancellationToken.None))!.ExpiresAt > DateTimeOffset.UtcNow.AddSeconds(30));

        static (string, long) Holder(SingletonLease lease) => (lease.Holder, lease.Token);
    }

    [SkippableFact]
    public async Task Should_pause_a_stage_once_and_resume_it()
    {
        var at = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);

        await Store.Control.PauseAsync("reconstruction", "shift-crew", at, CancellationToken.None);
        await Store.Control.PauseAsync("reconstruction", "someone-else", at.AddMinutes(1), CancellationToken.None);
        await Store.Control.PauseAsync("archiver", "tape-team", at.AddMinutes(2), CancellationToken.None);

        Assert.Equal([("archiver", "tape-team"), ("reconstruction", "shift-crew")], (await Store.Control.ListPausedAsync(CancellationToken.None)).Select(p => (p.Stage, p.By)));
        Assert.True(await Store.Control.ResumeAsync("reconstruction", CancellationToken.None));
        Assert.False(await Store.Control.ResumeAsync("reconstruction", CancellationToken.None));
        Assert.Equal(["archiver"], (await Store.Control.ListPausedAsync(CancellationToken.None)).Select(p => p.Stage));
    }

    [SkippableFact]
    public async Task Should_create_one_saga_when_first_events_race()
    {
        var id = Guid.NewGuid();
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(async writer =>
        {
            var saga = Saga(1, "a");
            saga.CorrelationId = id;
            saga.FailureReason = $"writer {writer}";
            try
            {
                await Store.Sagas.InsertAsync(saga, CancellationToken.None);
                return true;
            }
            catch (ConcurrencyConflictException)
            {
                return false;
            }
        }));

        Assert.Equal(1, outcomes.Count(won => won));
        var stored = (await Store.Sagas.LoadAsync(id, CancellationToken.None))!;
        Assert.Equal($"writer {Array.IndexOf(outcomes, true)}", stored.FailureReason);
        Assert.Single((await Store.Sagas.ListAsync(new FileQuery(), CancellationToken.None)).Files);
    }

    [SkippableFact]
    public async Task Should_answer_every_listing_filter_and_run_progress()
    {
        await Store.Sagas.InsertAsync(Saga(1, "p1", "Archived"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Saga(1, "p2", "Reconstructing"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Saga(1, "e1", "Failed", stream: "express"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Saga(2, "p3", "Reconstructed"), CancellationToken.None);
        await Store.Sagas.InsertAsync(Saga(1, "r1", "Staging", campaign: "reprocessing-2"), CancellationToken.None);

        async Task<string[]> Names(FileQuery query) =>
            (await Store.Sagas.ListAsync(query, CancellationToken.None)).Files.Select(f => f.LogicalName).ToArray();

        Assert.Equal(["e1", "p1", "p2", "p3"], await Names(new FileQuery(Campaign: "prompt")));
        Assert.Equal(["r1"], await Names(new FileQuery(Campaign: "reprocessing-2")));
        Assert.Equal(["e1"], await Names(new FileQuery(Campaign: "prompt", Stream: "express")));
        Assert.Equal(["p2"], await Names(new FileQuery(Campaign: "prompt", State: "Reconstructing")));
        Assert.Equal(["p3"], await Names(new FileQuery(Stream: "physics", RunFrom: 2)));
        Assert.Empty(await Names(new FileQuery(Campaign: "prompt", State: "Merged")));
        var withMuon = Saga(2, "p4", "Merged");
        withMuon.Outputs.Add(new TrackedOutput { Output = new OutputFile("o-muon", "muon", "jobs/o.evt", 1, "00000001", 1, 2, 1) });
        withMuon.Outputs.Add(new TrackedOutput { Output = new OutputFile("o-jet", "jet", "jobs/j.evt", 1, "00000001", 1, 2, 1) });
        await Store.Sagas.InsertAsync(withMuon, CancellationToken.None);
        Assert.Equal(["p4"], await Names(new FileQuery(Dataset: "muon")));
        Assert.Equal(["p4"], await Names(new FileQuery(Campaign: "prompt", Dataset: "jet", RunFrom: 2)));
        Assert.Empty(await Names(new FileQuery(Dataset: "electron")));
        await Store.Sagas.UpdateAsync(WithState(withMuon, "Archived"), 0, CancellationToken.None);
        var failed = Assert.Single((await Store.Sagas.ListAsync(new FileQuery(State: "Failed"), CancellationToken.None)).Files);
        Assert.Equal(("prompt", 1, "express", "Failed"), (failed.Campaign, failed.Run, failed.Stream, failed.State));

        Assert.Equal(
            [("prompt", "Archived", 2L), ("prompt", "Failed", 1L), ("prompt", "Reconstructed", 1L), ("prompt", "Reconstructing", 1L), ("reprocessing-2", "Staging", 1L)],
            (await Store.Sagas.CountByStateAsync(CancellationToken.None)).Select(c => (c.Campaign, c.State, c.Files)));
    }

    [SkippableFact]
    public async Task Should_load_what_was_inserted_with_its_history()
    {
        var saga = Saga(1, "a");
        saga.Record(DateTimeOffset.UnixEpoch, "Registered", "FileRegistered", "hello");
        await Store.Sagas.InsertAsync(saga, CancellationToken.None);

        var loaded = await Store.Sagas.LoadAsync(saga.CorrelationId, CancellationToken.None);

        Assert.NotNull(loaded);
        Assert.Equal("a", loaded.LogicalName);
        Assert.Equal("hello", Assert.Single(loaded.History).Detail);
    }

    [SkippableFact]
    public async Task Should_refuse_a_second_insert_of_the_same_saga()
    {
        var saga = Saga(1, "a");
        await Store.Sagas.InsertAsync(saga, CancellationToken.None);
        await Assert.ThrowsAsync<ConcurrencyConflictException>(() => Store.Sagas.InsertAsync(saga, CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_let_exactly_one_of_many_parallel_writers_win_each_version()
    {
        var saga = Saga(1, "a");
        await Store.Sagas.InsertAsync(saga, CancellationToken.None);

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(async writer =>
        {
            var copy = (await Store.Sagas.LoadAsync(saga.CorrelationId, CancellationToken.None))!;
            copy.FailureReason = $"writer {writer}";
            try
            {
                await Store.Sagas.UpdateAsync(copy, 0, CancellationToken.None);
                return true;
            }
            catch (ConcurrencyConflictException)
            {
                return false;
            }
        }));

        Assert.Equal(1, outcomes.Count(won => won));
        var stored = (await Store.Sagas.LoadAsync(saga.CorrelationId, CancellationToken.None))!;
        Assert.Equal(1, stored.Version);
        Assert.Equal($"writer {Array.IndexOf(outcomes, true)}", stored.FailureReason);
    }

    [SkippableFact]
    public async Task Should_page_through_files_in_run_and_name_order_with_filters()
    {
        for (var run = 3; run >= 1; run--)
        {
            foreach (var name in new[] { "c", "a", "b" })
            {
                await Store.Sagas.InsertAsync(Saga(run, $"{run}/{name}", run == 2 ? "Failed" : "Staging"), CancellationToken.None);
            }
        }

        var seen = new List<string>();
        string? after = null;
        do
        {
            var page = await Store.Sagas.ListAsync(new FileQuery(After: after, Limit: 4), CancellationToken.None);
            seen.AddRange(page.Files.Select(f => f.LogicalName));
            after = page.Next;
        }
        while (after is not null);

        Assert.Equal(["1/a", "1/b", "1/c", "2/a", "2/b", "2/c", "3/a", "3/b", "3/c"], seen);
        Assert.Equal(3, (await Store.Sagas.ListAsync(new FileQuery(State: "Failed"), CancellationToken.None)).Files.Count);
        Assert.Equal(6, (await Store.Sagas.ListAsync(new FileQuery(RunFrom: 2), CancellationToken.None)).Files.Count);
        Assert.Equal(3, (await Store.Sagas.ListAsync(new FileQuery(RunFrom: 1, RunTo: 1), CancellationToken.None)).Files.Count);
        Assert.Contains(await Store.Sagas.CountByStateAsync(CancellationToken.None), c => c is { State: "Failed", Files: 3 });
        Assert.Throws<FormatException>(() => FileCursor.Decode("not-a-cursor!"));
    }

    [SkippableFact]
    public async Task Should_keep_the_counts_per_state_as_files_move()
    {
        var a = Saga(1, "a");
        var b = Saga(1, "b");
        await Store.Sagas.InsertAsync(a, CancellationToken.None);
        await Store.Sagas.InsertAsync(b, CancellationToken.None);
        a.CurrentState = "Archived";
        await Store.Sagas.UpdateAsync(a, 0, CancellationToken.None);
        a.FailureReason = "same state, other change";
        await Store.Sagas.UpdateAsync(a, 1, CancellationToken.None);
        await Assert.ThrowsAsync<ConcurrencyConflictException>(() => Store.Sagas.UpdateAsync(WithState(b, "Failed"), 7, CancellationToken.None));

        var counts = await Store.Sagas.CountByStateAsync(CancellationToken.None);

        Assert.Equal([("Archived", 1L), ("Staging", 1L)], counts.Select(c => (c.State, c.Files)));
    }

    [SkippableFact]
    public async Task Should_find_files_past_their_deadline_but_never_final_ones()
    {
        var late = Saga(1, "late");
        late.Deadline = DateTimeOffset.UtcNow.AddMinutes(-1);
        var onTime = Saga(1, "on-time");
        onTime.Deadline = DateTimeOffset.UtcNow.AddMinutes(5);
        var done = Saga(1, "done", "Archived");
        done.Deadline = DateTimeOffset.UtcNow.AddMinutes(-1);
        foreach (var saga in new[] { late, onTime, done })
        {
            await Store.Sagas.InsertAsync(saga, CancellationToken.None);
        }

        var stalled = await Store.Sagas.FindStalledAsync(DateTimeOffset.UtcNow, null, 10, CancellationToken.None);
        Assert.Equal([late.CorrelationId], stalled.Select(s => s.Id));

        var notTouchedSinceStart = await Store.Sagas.FindStalledAsync(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddSeconds(1), 10, CancellationToken.None);
        Assert.Equal(2, notTouchedSinceStart.Count);
    }

    [SkippableFact]
    public async Task Should_register_a_run_once_and_refuse_it_with_other_files()
    {
        CatalogEntry Raw(string name, long size) => new(name, "archive", CatalogEntry.Raw, null, null, size, "00000001", 1, [], DateTimeOffset.UtcNow);

        Assert.Equal(RunRegistration.New, await Store.Runs.RegisterRunAsync(7, "digest-1", [Raw("r/a", 1)], null, CancellationToken.None));
        Assert.Equal(RunRegistration.AlreadyRegistered, await Store.Runs.RegisterRunAsync(7, "digest-1", [Raw("r/a", 1)], null, CancellationToken.None));
        Assert.Equal(RunRegistration.Conflicting, await Store.Runs.RegisterRunAsync(7, "digest-2", [Raw("r/a", 2)], null, CancellationToken.None));
        // Another run claiming a file already catalogued with other content is refused whole.
        Assert.Equal(RunRegistration.Conflicting, await Store.Runs.RegisterRunAsync(8, "digest-3", [Raw("r/b", 1), Raw("r/a", 5)], null, CancellationToken.None));
        Assert.Empty(await Store.Catalog.FindAsync("r/b", CancellationToken.None));
        Assert.Single(await Store.Runs.ListRunsAsync(CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_commit_a_merge_only_if_none_of_its_outputs_was_taken()
    {
        PendingOutput Output(string id) => new(id, Guid.NewGuid(), "prompt", "muon", 1, "physics", 1, "raw", $"jobs/{id}", 10, "00000001", 2, DateTimeOffset.UtcNow, null);
        MergedFileRecord Merged(string name) => new(name, "prompt", "muon", 20, "00000001", 4, false, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, $"{{\"name\":\"{name}\"}}");
        foreach (var id in new[] { "o1", "o2", "o3" })
        {
            await Store.Merges.AddOutputAsync(Output(id), CancellationToken.None);
        }
        Assert.Equal(10, (await Store.Merges.AddOutputAsync(Output("o1"), CancellationToken.None)).Size);

        Assert.Equal(1, (await Store.Merges.CommitMergeAsync(Merged("m1"), ["o1", "o2"], CancellationToken.None))!.Sequence);
        Assert.Null(await Store.Merges.CommitMergeAsync(Merged("m2"), ["o2", "o3"], CancellationToken.None));

        Assert.Null(await Store.Merges.GetMergedFileAsync("m2", CancellationToken.None));
        Assert.Equal("{\"name\":\"m1\"}", (await Store.Merges.GetMergedFileAsync("m1", CancellationToken.None))!.Manifest);
        Assert.Equal(["o3"], (await Store.Merges.ListPendingAsync("prompt", "muon", 10, CancellationToken.None)).Select(o => o.OutputId));
        Assert.Equal("m1", (await Store.Merges.AddOutputAsync(Output("o2"), CancellationToken.None)).MergedName);
        var buffer = Assert.Single(await Store.Merges.ListBuffersAsync(CancellationToken.None));
        Assert.Equal((1, 10L), (buffer.Outputs, buffer.Bytes));

        Assert.Equal(["o1", "o2"], (await Store.Merges.ListOutputsOfAsync("m1", CancellationToken.None)).Select(o => o.OutputId));
        Assert.Equal(["m1"], (await Store.Merges.ListUnarchivedAsync(DateTimeOffset.UtcNow.AddMinutes(1), CancellationToken.None)).Select(m => m.Name));
        Assert.Equal(new Dictionary<string, int> { ["prompt"] = 1 }, await Store.Merges.CountUnarchivedAsync(CancellationToken.None));
        await Store.Merges.MarkArchivedAsync("m1", CancellationToken.None);
        Assert.Empty(await Store.Merges.CountUnarchivedAsync(CancellationToken.None));
        Assert.True((await Store.Merges.GetMergedFileAsync("m1", CancellationToken.None))!.Archived);
        Assert.Empty(await Store.Merges.ListUnarchivedAsync(DateTimeOffset.UtcNow.AddMinutes(1), CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_keep_catalog_entries_unique_by_name_and_area()
    {
        var entry = new CatalogEntry("merged/x", "archive", CatalogEntry.Merged, "prompt", "muon", 5, "00000001", 1,
            [new MergedSource(Guid.NewGuid(), 1, "physics", "raw/a", "o1")], DateTimeOffset.UtcNow, "{\"digest\":\"d\"}");
        await Store.Catalog.AddAsync(entry, CancellationToken.None);
        await Store.Catalog.AddAsync(entry, CancellationToken.None);
        await Assert.ThrowsAsync<ConcurrencyConflictException>(() => Store.Catalog.AddAsync(entry with { Adler32 = "00000002" }, CancellationToken.None));
        await Store.Catalog.AddAsync(entry with { Area = "cache" }, CancellationToken.None);
        var found = await Store.Catalog.FindAsync("merged/x", CancellationToken.None);
        Assert.Equal(["archive", "cache"], found.Select(f => f.Area));
        Assert.Equal("o1", Assert.Single(found[0].Sources).OutputId);
        // The merged file's manifest travels with its catalog entry.
        Assert.Equal("{\"digest\":\"d\"}", found[0].Manifest);
        Assert.Equal(2, (await Store.Catalog.ListAsync(CatalogEntry.Merged, "prompt", CancellationToken.None)).Count);
        Assert.Empty(await Store.Catalog.ListAsync(CatalogEntry.Merged, "other", CancellationToken.None));
        Assert.Empty(await Store.Catalog.ListAsync(CatalogEntry.Raw, null, CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_mark_one_catalogued_copy_bad_and_clear_the_mark()
    {
        var entry = new CatalogEntry("merged/y", "archive", CatalogEntry.Merged, "prompt", "muon", 5, "00000001", 1, [], DateTimeOffset.UtcNow);
        await Store.Catalog.AddAsync(entry, CancellationToken.None);
        await Store.Catalog.AddAsync(entry with { Area = "vault" }, CancellationToken.None);

        Assert.True(await Store.Catalog.MarkBadAsync("merged/y", "archive", "missing from storage", null, CancellationToken.None));
        Assert.False(await Store.Catalog.MarkBadAsync("merged/y", "elsewhere", "missing from storage", null, CancellationToken.None));
        Assert.Equal([("archive", "missing from storage"), ("vault", null)], (await Store.Catalog.FindAsync("merged/y", CancellationToken.None)).Select(e => (e.Area, e.Bad)));
        // A bad copy is still the same file: adding its entry again is no conflict.
        await Store.Catalog.AddAsync(entry, CancellationToken.None);
        Assert.True(await Store.Catalog.MarkBadAsync("merged/y", "archive", null, null, CancellationToken.None));
        Assert.All(await Store.Catalog.FindAsync("merged/y", CancellationToken.None), e => Assert.Null(e.Bad));
    }

    private static readonly AreaLimits TenKilobytes = new(10_000, 9_000, 5_000);

    [SkippableFact]
    public async Task Should_admit_files_into_an_area_until_its_high_water_mark_and_again_only_below_its_low_water_mark()
    {
        var at = DateTimeOffset.UtcNow;
        for (var i = 0; i < 3; i++)
        {
            Assert.True(await Store.Flow.TryReserveAsync("cache", $"f{i}", 4_000, TenKilobytes, at, CancellationToken.None));
        }
        // 12,000 bytes held: above the high-water mark, so the area is blocked (one file over, never more).
        Assert.False(await Store.Flow.TryReserveAsync("cache", "f3", 1, TenKilobytes, at, CancellationToken.None));
        // A file already admitted is admitted again (a redelivered stage request), blocked or not.
        Assert.True(await Store.Flow.TryReserveAsync("cache", "f0", 4_000, TenKilobytes, at, CancellationToken.None));

        await Store.Flow.ReleaseAsync("cache", "f0", null, CancellationToken.None);
        Assert.False(await Store.Flow.TryReserveAsync("cache", "f3", 1, TenKilobytes, at, CancellationToken.None)); // 8,000 > low water
        await Store.Flow.ReleaseAsync("cache", "f1", null, CancellationToken.None);
        await Store.Flow.ReleaseAsync("cache", "f1", null, CancellationToken.None); // releasing twice gives back nothing more
        Assert.True(await Store.Flow.TryReserveAsync("cache", "f3", 1, TenKilobytes, at, CancellationToken.None)); // 4,000 <= low water

        var usage = Assert.Single(await Store.Flow.ListAreaUsageAsync(CancellationToken.None));
        Assert.Equal(new AreaUsage("cache", 4_001, 2, false, 12_000, 4_000), usage);
    }

    [SkippableFact]
    public async Task Should_never_admit_past_the_high_water_mark_plus_one_file_however_many_ask_at_once()
    {
        var admitted = await Task.WhenAll(Enumerable.Range(0, 40).Select(i =>
            Store.Flow.TryReserveAsync("cache", $"f{i}", 1_000, TenKilobytes, DateTimeOffset.UtcNow, CancellationToken.None)));

        Assert.Equal(9, admitted.Count(a => a));
        var usage = Assert.Single(await Store.Flow.ListAreaUsageAsync(CancellationToken.None));
        Assert.Equal(9_000, usage.Bytes);
        Assert.True(usage.Blocked);
    }

    [SkippableFact]
    public async Task Should_replace_a_job_estimate_by_its_outputs_and_list_old_reservations()
    {
        var at = DateTimeOffset.UtcNow;
        Assert.True(await Store.Flow.TryReserveAsync("scratch", "jobs/a", 5_000, TenKilobytes, at.AddMinutes(-10), CancellationToken.None));
        await Store.Flow.ReplaceReservationAsync("scratch", "jobs/a", [new AreaFile("jobs/a/muon.evt", 700), new AreaFile("jobs/a/jet.evt", 300)], at, CancellationToken.None);

        var usage = Assert.Single(await Store.Flow.ListAreaUsageAsync(CancellationToken.None));
        Assert.Equal((1_000L, 2L), (usage.Bytes, usage.Files));
        Assert.Empty(await Store.Flow.ListReservationsAsync("scratch", at, 10, CancellationToken.None));
        var listed = await Store.Flow.ListReservationsAsync("scratch", at.AddSeconds(1), 10, CancellationToken.None);
        Assert.Equal(["jobs/a/muon.evt", "jobs/a/jet.evt"], listed.Select(r => r.Name).Order(StringComparer.Ordinal).Reverse());
    }

    [SkippableFact]
    public async Task Should_hand_out_at_most_the_limit_of_movers_and_one_per_dataset()
    {
        var now = DateTimeOffset.UtcNow;
        var lease = TimeSpan.FromMinutes(1);
        Assert.True(await Store.Flow.TryAcquireMoverAsync("muon", "a", 2, now, lease, CancellationToken.None));
        Assert.False(await Store.Flow.TryAcquireMoverAsync("muon", "b", 2, now, lease, CancellationToken.None));
        Assert.True(await Store.Flow.TryAcquireMoverAsync("muon", "a", 2, now, lease, CancellationToken.None));
        Assert.True(await Store.Flow.TryAcquireMoverAsync("jet", "b", 2, now, lease, CancellationToken.None));
        Assert.False(await Store.Flow.TryAcquireMoverAsync("electron", "c", 2, now, lease, CancellationToken.None));

        await Store.Flow.ReleaseMoverAsync("muon", "b", CancellationToken.None); // not b's: nothing changes
        Assert.Equal(["jet", "muon"], (await Store.Flow.ListMoversAsync(now, CancellationToken.None)).Select(m => m.Dataset));
        await Store.Flow.ReleaseMoverAsync("muon", "a", CancellationToken.None);
        Assert.True(await Store.Flow.TryAcquireMoverAsync("electron", "c", 2, now, lease, CancellationToken.None));

        // A holder that died lets its lease run out; then its mover counts for nobody. A networked store judges leases by
        // its own clock, not the caller's, so the lease really runs out: a short one.
        await Store.Flow.ReleaseMoverAsync("jet", "b", CancellationToken.None);
        Assert.True(await Store.Flow.TryAcquireMoverAsync("jet", "dies", 2, DateTimeOffset.UtcNow, TimeSpan.FromMilliseconds(500), CancellationToken.None));
        Assert.False(await Store.Flow.TryAcquireMoverAsync("jet", "d", 2, DateTimeOffset.UtcNow, lease, CancellationToken.None));
        await Eventually.Until(() => Store.Flow.TryAcquireMoverAsync("jet", "d", 2, DateTimeOffset.UtcNow, lease, CancellationToken.None), taken => taken,
            TimeSpan.FromSeconds(10), "the dead holder's mover passed to d", taken => taken.ToString());
        Assert.Equal([("electron", "c"), ("jet", "d")], (await Store.Flow.ListMoversAsync(DateTimeOffset.UtcNow, CancellationToken.None)).Select(m => (m.Dataset, m.Holder)));
    }

    [SkippableFact]
    public async Task Should_never_hand_out_more_movers_than_the_limit_to_concurrent_archivers()
    {
        var now = DateTimeOffset.UtcNow;
        var granted = await Task.WhenAll(Enumerable.Range(0, 12).Select(i =>
            Store.Flow.TryAcquireMoverAsync($"dataset{i % 6}", $"archiver{i}", 3, now, TimeSpan.FromMinutes(1), CancellationToken.None)));

        Assert.Equal(3, granted.Count(g => g));
        var movers = await Store.Flow.ListMoversAsync(now, CancellationToken.None);
        Assert.Equal(3, movers.Select(m => m.Dataset).Distinct().Count());
    }

    [SkippableFact]
    public async Task Should_keep_the_latest_setting_per_key_until_it_is_removed()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000);
        await Store.Flow.SetSettingAsync(new FlowSetting("movers", "2", "alice", at), CancellationToken.None);
        await Store.Flow.SetSettingAsync(new FlowSetting("movers", "4", "bob", at.AddMinutes(1)), CancellationToken.None);
        await Store.Flow.SetSettingAsync(new FlowSetting("area:cache", "{}", "bob", at), CancellationToken.None);

        Assert.Equal([new FlowSetting("area:cache", "{}", "bob", at), new FlowSetting("movers", "4", "bob", at.AddMinutes(1))],
            await Store.Flow.ListSettingsAsync(CancellationToken.None));
        Assert.True(await Store.Flow.RemoveSettingAsync("movers", CancellationToken.None));
        Assert.False(await Store.Flow.RemoveSettingAsync("movers", CancellationToken.None));
        Assert.Single(await Store.Flow.ListSettingsAsync(CancellationToken.None));
    }

    private static RunFileProgress Report(int run, string file, long sequence, bool open, params (string Dataset, int Outputs)[] outputs) =>
        new(ReportedFile(file), run, "physics", file.StartsWith("other", StringComparison.Ordinal) ? "other" : "prompt", sequence, open,
            [.. outputs.Select(o => new DatasetOutputs(o.Dataset, o.Outputs))]);

    private static Guid ReportedFile(string name) => new(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes(name)));

    [SkippableFact]
    public async Task Should_find_the_oldest_run_with_files_still_to_reconstruct()
    {
        Assert.Null(await Store.RunLedger.OldestOpenRunAsync("prompt", CancellationToken.None));
        await Store.RunLedger.RecordAsync(Report(5, "raw/5/a", 1, open: true), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(5, "raw/5/a", 4, open: false), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(7, "raw/7/a", 1, open: true), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(9, "raw/9/a", 1, open: true), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(3, "other/3/a", 1, open: true), CancellationToken.None);

        Assert.Equal(7, await Store.RunLedger.OldestOpenRunAsync("prompt", CancellationToken.None));
        Assert.Equal(3, await Store.RunLedger.OldestOpenRunAsync("other", CancellationToken.None));

        // A report that arrives after a later one changes nothing: run 5's file stays closed.
        await Store.RunLedger.RecordAsync(Report(5, "raw/5/a", 2, open: true), CancellationToken.None);
        Assert.Equal(7, await Store.RunLedger.OldestOpenRunAsync("prompt", CancellationToken.None));
        // A retried file is open again.
        await Store.RunLedger.RecordAsync(Report(5, "raw/5/a", 9, open: true), CancellationToken.None);
        Assert.Equal(5, await Store.RunLedger.OldestOpenRunAsync("prompt", CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_tell_per_run_how_many_files_are_known_and_past_reconstruction()
    {
        await Store.RunLedger.RecordAsync(Report(1, "raw/1/a", 1, open: true), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(1, "raw/1/b", 5, open: false), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(1, "raw/1/c", 6, open: false, ("muon", 1)), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(2, "raw/2/a", 6, open: false), CancellationToken.None);
        await Store.RunLedger.RecordAsync(Report(2, "raw/2/b", 3, open: false), CancellationToken.None);

        var progress = await Store.RunLedger.RunProgressAsync("prompt", [1, 2, 3], CancellationToken.None);
        Assert.Equal(new RunProgress(3, 2), progress[1]);
        Assert.Equal(new RunProgress(2, 2), progress[2]);
        Assert.Equal(new RunProgress(0, 0), progress[3]);
        Assert.False(progress[1].Ended);
        Assert.True(progress[2].Ended);
    }

    [SkippableFact]
    public async Task Should_count_per_run_the_outputs_files_reported_and_the_outputs_the_merger_received()
    {
        var at = DateTimeOffset.UtcNow;
        for (var run = 1; run <= 2; run++)
        {
            await Store.RunLedger.RecordAsync(Report(run, $"raw/{run}/a", 1, open: true), CancellationToken.None);
            await Store.RunLedger.RecordAsync(Report(run, $"raw/{run}/a", 7, open: false, ("muon", 1), ("jet", 1)), CancellationToken.None);
        }
        await Store.RunLedger.RecordAsync(Report(2, "raw/2/b", 1, open: true), CancellationToken.None);
        await Store.Merges.AddOutputAsync(new PendingOutput("o1m", Guid.NewGuid(), "prompt", "muon", 1, "physics", 1, "raw/1/a", "jobs/1/m.evt", 10, "00000001", 3, at, null), CancellationToken.None);

        Assert.Equal(new Dictionary<int, int> { [1] = 1, [2] = 1 }, await Store.RunLedger.CountReportedOutputsAsync("prompt", "muon", 1, 3, CancellationToken.None));
        Assert.Equal(new Dictionary<int, int> { [2] = 1 }, await Store.RunLedger.CountReportedOutputsAsync("prompt", "muon", 2, 2, CancellationToken.None));
        Assert.Equal(new Dictionary<int, int> { [1] = 1 }, await Store.Merges.CountReceivedOutputsAsync("prompt", "muon", 1, 3, CancellationToken.None));
        Assert.Empty(await Store.Merges.CountReceivedOutputsAsync("prompt", "muon", 2, 3, CancellationToken.None));
        Assert.Empty(await Store.Merges.CountReceivedOutputsAsync("prompt", "jet", 1, 2, CancellationToken.None));

        // The highest run merged so far: none until a merge commits, then the highest of its outputs.
        Assert.Null(await Store.Merges.HighestMergedRunAsync("prompt", "muon", CancellationToken.None));
        await Store.Merges.AddOutputAsync(new PendingOutput("o2m", Guid.NewGuid(), "prompt", "muon", 2, "physics", 1, "raw/2/a", "jobs/2/m.evt", 10, "00000001", 3, at, null), CancellationToken.None);
        Assert.NotNull(await Store.Merges.CommitMergeAsync(new MergedFileRecord("m12", "prompt", "muon", 20, "00000001", 6, false, at, at), ["o1m", "o2m"], CancellationToken.None));
        Assert.Equal(2, await Store.Merges.HighestMergedRunAsync("prompt", "muon", CancellationToken.None));
        Assert.Null(await Store.Merges.HighestMergedRunAsync("prompt", "jet", CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_number_a_datasets_merged_files_in_the_order_they_were_committed()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000);
        var committed = new List<(string Name, long Sequence)>();
        for (var i = 0; i < 3; i++)
        {
            var output = new PendingOutput($"o{i}", Guid.NewGuid(), "prompt", "muon", i, "physics", 0, $"raw/{i}", $"jobs/{i}.evt", 10, "00000001", 1, at, null);
            await Store.Merges.AddOutputAsync(output, CancellationToken.None);
            var stored = await Store.Merges.CommitMergeAsync(new MergedFileRecord($"m{2 - i}", "prompt", "muon", 10, "00000001", 1, false, at.AddSeconds(i), at.AddSeconds(i)),
                [output.OutputId], CancellationToken.None);
            committed.Add((stored!.Name, stored.Sequence));
        }
        var other = await Store.Merges.CommitMergeAsync(new MergedFileRecord("j0", "prompt", "jet", 10, "00000001", 1, false, at, at), [], CancellationToken.None);

        Assert.Equal([("m2", 1L), ("m1", 2L), ("m0", 3L)], committed);
        Assert.Equal(1, other!.Sequence);
        Assert.Equal(2, (await Store.Merges.GetMergedFileAsync("m1", CancellationToken.None))!.Sequence);
    }

    [SkippableFact]
    public async Task Should_number_concurrent_commits_of_one_dataset_without_a_gap_or_a_repeat()
    {
        var at = DateTimeOffset.UtcNow;
        var commits = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            Store.Merges.CommitMergeAsync(new MergedFileRecord($"c{i}", "prompt", "muon", 10, "00000001", 1, false, at, at), [], CancellationToken.None)));

        Assert.Equal(Enumerable.Range(1, 20).Select(i => (long)i), commits.Select(c => c!.Sequence).Order());
    }

    [SkippableFact]
    public async Task Should_keep_the_archivers_queue_in_order_and_its_first_record_of_a_file()
    {
        var at = DateTimeOffset.FromUnixTimeMilliseconds(1_800_000_000_000);
        QueuedMergedFile File(string name, long sequence, string dataset = "muon") =>
            new(name, "prompt", dataset, sequence, 10, "00000001", 4, at, "{\"name\":\"" + name + "\"}", [new MergedSource(Guid.NewGuid(), 1, "physics", "raw/a", $"{name}-o1", 2)]);
        foreach (var (name, sequence) in new[] { ("m3", 3L), ("m1", 1L), ("m2", 2L) })
        {
            await Store.ArchiveQueue.EnqueueAsync(File(name, sequence), CancellationToken.None);
        }
        await Store.ArchiveQueue.EnqueueAsync(File("j1", 1, "jet"), CancellationToken.None);

        Assert.Equal(0, await Store.ArchiveQueue.LastWrittenAsync("prompt", "muon", CancellationToken.None));
        await Store.ArchiveQueue.MarkAsync("m1", ArchivingState.Archived, CancellationToken.None);
        await Store.ArchiveQueue.MarkAsync("m2", ArchivingState.Written, CancellationToken.None);
        // Never back: a late "written" leaves an archived file archived.
        await Store.ArchiveQueue.MarkAsync("m1", ArchivingState.Written, CancellationToken.None);
        // The same request again keeps the stored record and its state.
        var again = await Store.ArchiveQueue.EnqueueAsync(File("m2", 2) with { Size = 99 }, CancellationToken.None);

        Assert.Equal((ArchivingState.Written, 10L), (again.State, again.Size));
        Assert.Equal(2, await Store.ArchiveQueue.LastWrittenAsync("prompt", "muon", CancellationToken.None));
        Assert.Equal(0, await Store.ArchiveQueue.LastWrittenAsync("prompt", "jet", CancellationToken.None));
        Assert.Equal(["m2", "m3"], (await Store.ArchiveQueue.ListFromAsync("prompt", "muon", 2, 10, CancellationToken.None)).Select(f => f.Name));
        var first = (await Store.ArchiveQueue.GetAsync("m1", CancellationToken.None))!;
        Assert.Equal((ArchivingState.Archived, at, "{\"name\":\"m1\"}", "m1-o1", 2), (first.State, first.MergedAt, first.Manifest, first.Sources.Single().OutputId, first.Sources.Single().Section));
        Assert.Null(await Store.ArchiveQueue.GetAsync("m9", CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_keep_the_raw_files_checksum_that_came_with_an_output()
    {
        var at = DateTimeOffset.UtcNow;
        var with = new PendingOutput("o-raw", Guid.NewGuid(), "prompt", "muon", 1, "physics", 1, "raw/1/a", "jobs/1/m.evt", 10, "00000001", 3, at, null, "0badcafe");
        var without = with with { OutputId = "o-old", RawAdler32 = null };

        Assert.Equal("0badcafe", (await Store.Merges.AddOutputAsync(with, CancellationToken.None)).RawAdler32);
        Assert.Null((await Store.Merges.AddOutputAsync(without, CancellationToken.None)).RawAdler32);
        Assert.Equal(["0badcafe", null], (await Store.Merges.ListPendingAsync("prompt", "muon", 10, CancellationToken.None)).OrderBy(o => o.OutputId == "o-old").Select(o => o.RawAdler32));
    }

    private static CatalogEntry RawEntry(string name) => new(name, "archive", CatalogEntry.Raw, null, null, 10, "00000001", 5, [], DateTimeOffset.UtcNow);

    private static CampaignRecord Campaign(string name, string release = "v1", int priority = 1) =>
        Campaign(new CampaignDefinition
        {
            Name = name,
            Kind = CampaignKinds.Reprocessing,
            Release = new ReleaseSpec { Version = release, Executable = "/bin/true", Arguments = ["{input}"] },
            Datasets = new Dictionary<string, uint> { ["muon"] = 3 },
            Priority = priority,
        });

    private static CampaignRecord Campaign(CampaignDefinition definition) =>
        new(definition, CampaignStatus.Active, 1, definition.Digest(), "tester", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch, 12, CampaignFeed.Start(7));

    [SkippableFact]
    public async Task Should_create_a_campaign_once_and_refuse_another_definition_under_its_name()
    {
        Assert.Equal(CampaignCreation.Created, await Store.Campaigns.CreateCampaignAsync(Campaign("reco-b"), CancellationToken.None));
        Assert.Equal(CampaignCreation.Created, await Store.Campaigns.CreateCampaignAsync(Campaign("reco-a"), CancellationToken.None));
        // The same definition again, even with another priority (which operators may change), is a repeat.
        Assert.Equal(CampaignCreation.AlreadyExists, await Store.Campaigns.CreateCampaignAsync(Campaign("reco-a", priority: 5), CancellationToken.None));
        Assert.Equal(CampaignCreation.Conflicting, await Store.Campaigns.CreateCampaignAsync(Campaign("reco-a", release: "v2"), CancellationToken.None));

        var stored = (await Store.Campaigns.GetCampaignAsync("reco-a", CancellationToken.None))!;
        Assert.Equal(("v1", 3u, 12L, 7, "tester"), (stored.Definition.Release!.Version, stored.Definition.Datasets!["muon"], stored.ExpectedFiles, stored.Feed.UpToRun, stored.CreatedBy));
        Assert.Equal(["reco-a", "reco-b"], (await Store.Campaigns.ListCampaignsAsync(CancellationToken.None)).Select(c => c.Name));
        Assert.Null(await Store.Campaigns.GetCampaignAsync("reco-c", CancellationToken.None));
    }

    [SkippableFact]
    public async Task Should_change_a_campaign_only_from_the_version_it_was_read_at()
    {
        await Store.Campaigns.CreateCampaignAsync(Campaign("reco"), CancellationToken.None);
        var read = (await Store.Campaigns.GetCampaignAsync("reco", CancellationToken.None))!;
        var fed = read with { Feed = read.Feed with { Run = 3, Index = 4, Registered = 9 } };

        Assert.True(await Store.Campaigns.ReplaceCampaignAsync(fed, read.Version, null, CancellationToken.None));
        // A second writer that read the same version loses, and changes nothing.
        Assert.False(await Store.Campaigns.ReplaceCampaignAsync(read with { Status = CampaignStatus.Cancelled }, read.Version, null, CancellationToken.None));

        var stored = (await Store.Campaigns.GetCampaignAsync("reco", CancellationToken.None))!;
        Assert.Equal((read.Version + 1, CampaignStatus.Active, 3, 4, 9L), (stored.Version, stored.Status, stored.Feed.Run, stored.Feed.Index, stored.Feed.Registered));
    }

    [SkippableFact]
    public async Task Should_refuse_a_singletons_writes_once_another_holder_took_its_lease_and_change_nothing()
    {
        var start = DateTimeOffset.UtcNow;
        var first = await Store.SingletonLeases.AcquireAsync("feeder", "a", TimeSpan.FromSeconds(5), start, CancellationToken.None);
        var fence = new SingletonFence("feeder", "a", first.Token);
        await Store.Campaigns.CreateCampaignAsync(Campaign("reco"), CancellationToken.None);
        var read = (await Store.Campaigns.GetCampaignAsync("reco", CancellationToken.None))!;
        await Store.Catalog.AddAsync(new CatalogEntry("merged/z", "archive", CatalogEntry.Merged, "prompt", "muon", 5, "00000001", 1, [], start), CancellationToken.None);
        Assert.True(await Store.Flow.TryReserveAsync("cache", "f0", 10, TenKilobytes, start, CancellationToken.None));

        // While its term lasts, the holder writes.
        Assert.True(await Store.Campaigns.ReplaceCampaignAsync(read with { Feed = read.Feed with { Registered = 1 } }, read.Version, fence, CancellationToken.None));
        read = (await Store.Campaigns.GetCampaignAsync("reco", CancellationToken.None))!;

        // Its lease ran out (it was paused, say) and another instance took the work over: the next token. A networked store
        // judges the lease by its own clock, so the other instance asks until the first's term has really passed.
        var second = await Eventually.Until(() => Store.SingletonLeases.AcquireAsync("feeder", "b", TimeSpan.FromSeconds(30), DateTimeOffset.UtcNow, CancellationToken.None),
            lease => lease.Holder == "b", TimeSpan.FromSeconds(20), "another holder took the lease", lease => $"{lease.Holder} {lease.Token}");
        Assert.Equal(first.Token + 1, second.Token);

        await Assert.ThrowsAsync<StaleFenceException>(() => Store.Campaigns.ReplaceCampaignAsync(read with { Feed = read.Feed with { Registered = 2 } }, read.Version, fence, CancellationToken.None));
        await Assert.ThrowsAsync<StaleFenceException>(() => Store.Catalog.MarkBadAsync("merged/z", "archive", "missing from storage", fence, CancellationToken.None));
        await Assert.ThrowsAsync<StaleFenceException>(() => Store.Flow.ReleaseAsync("cache", "f0", fence, CancellationToken.None));

        Assert.Equal((read.Version, 1L), ((await Store.Campaigns.GetCampaignAsync("reco", CancellationToken.None))!.Version, (await Store.Campaigns.GetCampaignAsync("reco", CancellationToken.None))!.Feed.Registered));
        Assert.Null(Assert.Single(await Store.Catalog.FindAsync("merged/z", CancellationToken.None)).Bad);
        Assert.Equal(10, Assert.Single(await Store.Flow.ListAreaUsageAsync(CancellationToken.None)).Bytes);
        // The new holder's writes pass.
        await Store.Flow.ReleaseAsync("cache", "f0", new SingletonFence("feeder", "b", second.Token), CancellationToken.None);
        Assert.Equal(0, Assert.Single(await Store.Flow.ListAreaUsageAsync(CancellationToken.None)).Bytes);
    }

    [SkippableFact]
    public async Task Should_register_a_calibration_once_and_list_it_by_tag()
    {
        var at = DateTimeOffset.UnixEpoch.AddDays(1);
        Assert.True(await Store.Campaigns.AddCalibrationAsync(new CalibrationRecord("align-v2", 10, 20, "calib", at), CancellationToken.None));
        Assert.False(await Store.Campaigns.AddCalibrationAsync(new CalibrationRecord("align-v2", 10, 20, "someone else", at), CancellationToken.None));
        Assert.True(await Store.Campaigns.AddCalibrationAsync(new CalibrationRecord("align-v2", 21, 30, "calib", at), CancellationToken.None));
        Assert.True(await Store.Campaigns.AddCalibrationAsync(new CalibrationRecord("align-v1", 1, 5, "calib", at), CancellationToken.None));

        var v2 = await Store.Campaigns.ListCalibrationsAsync("align-v2", CancellationToken.None);
        Assert.Equal([(10, 20, "calib"), (21, 30, "calib")], v2.Select(c => (c.RunFrom, c.RunTo, c.RegisteredBy)));
        Assert.Equal(3, (await Store.Campaigns.ListCalibrationsAsync(null, CancellationToken.None)).Count);
    }

    [SkippableFact]
    public async Task Should_keep_each_runs_announcement_with_its_conditions_in_run_order()
    {
        RunRecorded Announcement(int run) => new()
        {
            Run = run,
            Files = [new RawFileRecord { Name = $"r/{run}.raw", Stream = "physics", Section = 1, Size = 10, Adler32 = "00000001", Events = 5 }],
            Conditions = new Dictionary<string, string> { ["beamEnergy"] = $"{run}.5" },
        };
        foreach (var run in new[] { 30, 10, 20 })
        {
            await Store.Runs.RegisterRunAsync(run, $"d{run}", [RawEntry($"r/{run}.raw")], Announcement(run), CancellationToken.None);
        }
        await Store.Runs.RegisterRunAsync(40, "d40", [RawEntry("r/40.raw")], null, CancellationToken.None);

        var after10 = await Store.Runs.ListAnnouncementsAsync(10, 10, CancellationToken.None);
        Assert.Equal([20, 30], after10.Select(r => r.Run));
        Assert.Equal("20.5", after10[0].Conditions!["beamEnergy"]);
        Assert.Equal("r/20.raw", after10[0].Files!.Single().Name);
        Assert.Equal([10], (await Store.Runs.ListAnnouncementsAsync(0, 1, CancellationToken.None)).Select(r => r.Run));
    }
}

public sealed class When_storing_state_in_sqlite : StoreContract
{
    private readonly TempDirectory _folder = new();

    protected override Task<StoreBackend> CreateStoreAsync() =>
        Task.FromResult(StoreBackend.Sqlite(Path.Combine(_folder.Path, "pipeline.db")));

    protected override Task DropStoreAsync()
    {
        _folder.Dispose();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task Should_keep_the_hourly_activity_of_an_earlier_version_as_hours_of_no_campaign()
    {
        using var folder = new TempDirectory();
        var path = Path.Combine(folder.Path, "pipeline.db");
        var nine = new DateTimeOffset(2026, 11, 26, 9, 0, 0, TimeSpan.Zero);
        // The table as the earlier version wrote it.
        using (var database = new SqliteDatabase(path))
        {
            database.Migrate(session => session.Run("""
                CREATE TABLE activity (hour INTEGER NOT NULL, stage TEXT NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY (hour, stage));
                INSERT INTO activity VALUES ($hour, 'staging', 12, 3400);
                """, ("$hour", nine.ToUnixTimeMilliseconds())));
        }

        using var store = StoreBackend.Sqlite(path);
        var hours = await store.Activity.ListActivityAsync(ThroughputResolution.Hour, nine, CancellationToken.None);

        Assert.Equal([("staging", "", nine, 12L, 3400L)], hours.Select(a => (a.Stage, a.Campaign, a.At, a.Files, a.Bytes)));
        using var after = new SqliteDatabase(path);
        Assert.Null(await after.ReadAsync(session => session.Scalar("SELECT name FROM sqlite_master WHERE name = 'activity'")));
    }
}

public sealed class When_storing_state_in_postgres(PostgresServer server) : StoreContract, IClassFixture<PostgresServer>
{
    private string? _schema;

    protected override async Task<StoreBackend> CreateStoreAsync()
    {
        server.Require();
        // A schema per test, so tests never see each other's rows.
        _schema = await server.CreateSchemaAsync();
        return StoreBackend.Postgres(PostgresConnection.Open(server.Options(_schema)));
    }

    protected override async Task DropStoreAsync()
    {
        if (_schema is not null)
        {
            Store.Dispose();
            await server.DropSchemaAsync(_schema);
        }
    }

    private const int Rows = 100_000;

    /// <summary>
    /// What the server plans for each listing the stores make, on tables of 100,000 rows each: an index walked in the
    /// listing's order, never a sequential scan or a sort.
    /// </summary>
    [SkippableFact]
    public async Task Should_answer_every_listing_from_an_index_without_a_sequential_scan_or_a_sort_on_large_tables()
    {
        // Every concern's tables made by its store, then filled on the server.
        _ = (Store.Sagas, Store.Merges, Store.ArchiveQueue, Store.Catalog, Store.Flow, Store.Health);
        foreach (var fill in new[]
        {
            $"""
            INSERT INTO file_sagas (id, version, state, campaign, run, stream, name, attempt, updated_at, deadline, failure, document)
            SELECT gen_random_uuid(), 0, (ARRAY['Staging', 'Reconstructing', 'Archived', 'Archived', 'Archived', 'Failed'])[1 + i % 6], 'c' || (i % 10),
                   i / 50, 's' || (i % 4), 'raw/' || lpad(i::text, 7, '0'), 1, i::bigint * 1000,
                   CASE WHEN i % 6 < 2 THEN i::bigint * 1000 + 5 END, NULL, jsonb_build_object()
            FROM generate_series(1, {Rows}) i
            """,
            $"""
            INSERT INTO merge_outputs (output_id, file_id, campaign, dataset, run, stream, section, raw_name, name, size, adler32, events, added_at, merged_name)
            SELECT 'o' || i, gen_random_uuid(), 'c' || (i % 10), 'd' || (i / 10 % 4), i / 50, 's', 0, 'raw', 'out' || i, 10, '00000001', 1, i,
                   CASE WHEN i % 7 = 0 THEN 'm' || (i / 100) END
            FROM generate_series(1, {Rows}) i
            """,
            $"""
            INSERT INTO archive_queue (name, campaign, dataset, sequence, size, adler32, events, merged_at, manifest, sources, state)
            SELECT 'm' || i, 'c' || (i % 10), 'd' || (i % 20), i, 10, '00000001', 1, i, NULL, '[]'::jsonb, i % 3 FROM generate_series(1, {Rows}) i
            """,
            $"""
            INSERT INTO catalog (name, area, kind, campaign, dataset, size, adler32, events, sources, created_at)
            SELECT 'f' || i, 'archive', (ARRAY['raw', 'merged', 'log'])[1 + i % 3], 'c' || (i % 10), 'd' || (i % 20), 10, '00000001', 1, '[]'::jsonb, i
            FROM generate_series(1, {Rows}) i
            """,
            $"INSERT INTO area_files (area, name, bytes, at) SELECT 'a' || (i % 5), 'n' || i, 10, i FROM generate_series(1, {Rows}) i",
            $"""
            INSERT INTO alerts (key, kind, severity, message, raised_at, last_seen_at, resolved_at)
            SELECT 'k' || i, 'stalled', 'warning', 'm', i, i, CASE WHEN i % 100 <> 0 THEN i + 1 END FROM generate_series(1, {Rows}) i
            """,
            "ANALYZE",
        })
        {
            await Store.PostgresDatabase!.WriteAsync(session => session.RunAsync(fill), CancellationToken.None);
        }
        var now = DateTimeOffset.FromUnixTimeMilliseconds(Rows * 1000L);
        var listings = new Dictionary<string, PostgresQuery>
        {
            ["files"] = PostgresFileSagaStore.Files(new FileQuery(Limit: 101)),
            ["files by campaign and state"] = PostgresFileSagaStore.Files(new FileQuery("c3", "Staging", Limit: 101)),
            ["files by state"] = PostgresFileSagaStore.Files(new FileQuery(State: "Failed", Limit: 101)),
            ["files by campaign and stream after a cursor"] = PostgresFileSagaStore.Files(new FileQuery("c3", Stream: "s1", After: FileCursor.Encode(100, "raw/0005000"), Limit: 101)),
            ["files by stream after a cursor"] = PostgresFileSagaStore.Files(new FileQuery(Stream: "s1", After: FileCursor.Encode(100, "raw/0005000"), Limit: 101)),
            ["stalled past their deadline"] = PostgresFileSagaStore.Stalled(now, now, 100)[0],
            ["stalled since their last write"] = PostgresFileSagaStore.Stalled(now, now, 100)[1],
            // A merge's inputs, at the merger's default bound: a buffer of thousands of outputs waits in the dataset.
            ["pending outputs"] = PostgresMergeStore.Pending("c3", "d3", 256),
            ["archive queue of a dataset"] = PostgresArchiveQueue.From("c3", "d3", 40_000, 100),
            ["catalog of a kind"] = PostgresRunCatalog.OfKind("merged", null),
            ["catalog of a kind and campaign"] = PostgresRunCatalog.OfKind("merged", "c3"),
            ["reservations of an area"] = PostgresFlowStore.Reservations("a1", now, 100),
            ["active alerts"] = PostgresHealthStore.Alerts(activeOnly: true, 100),
            ["alerts"] = PostgresHealthStore.Alerts(activeOnly: false, 100),
        };

        var plans = new List<string>();
        foreach (var (listing, query) in listings)
        {
            // The catalog's listings are read whole today; a page of them must come from the index in order all the same.
            var sql = query.Sql.Contains("LIMIT", StringComparison.Ordinal) ? query.Sql : query.Sql + " LIMIT 101";
            var plan = (string)(await Store.PostgresDatabase!.ReadAsync(session => session.ScalarAsync("EXPLAIN (FORMAT JSON) " + sql, query.Parameters), CancellationToken.None))!;
            var nodes = Nodes(System.Text.Json.JsonDocument.Parse(plan).RootElement).ToList();
            if (nodes.Any(n => n is "Seq Scan" or "Sort" or "Incremental Sort") || !nodes.Any(n => n is "Index Scan" or "Index Only Scan"))
            {
                plans.Add($"{listing}: {string.Join(" > ", nodes)}");
            }
        }

        Assert.Empty(plans);
    }

    private static IEnumerable<string> Nodes(System.Text.Json.JsonElement plan) => plan.ValueKind switch
    {
        System.Text.Json.JsonValueKind.Object => (plan.TryGetProperty("Node Type", out var type) ? [type.GetString()!] : Enumerable.Empty<string>())
            .Concat(plan.EnumerateObject().SelectMany(p => Nodes(p.Value))),
        System.Text.Json.JsonValueKind.Array => plan.EnumerateArray().SelectMany(Nodes),
        _ => [],
    };

    [SkippableFact]
    public async Task Should_migrate_the_schema_once_when_instances_start_together_and_record_each_concerns_version()
    {
        var schema = await server.CreateSchemaAsync();
        try
        {
            // Eight instances, each making every concern's stores at once: one migrates, the others wait and find it done.
            var instances = Enumerable.Range(0, 8).Select(_ => StoreBackend.Postgres(PostgresConnection.Open(server.Options(schema)))).ToList();
            await Task.WhenAll(instances.Select(instance => Task.Run(() =>
            {
                foreach (var concern in StoreConcerns.All)
                {
                    typeof(StoreBackend).GetMethod(nameof(StoreBackend.Get))!.MakeGenericMethod(concern).Invoke(instance, null);
                }
            })));

            var versions = await instances[0].PostgresDatabase!.SchemaVersionsAsync(CancellationToken.None);
            Assert.Equal(StoreConcerns.BackendClasses(typeof(IPostgresStore)).Count, versions.Count);
            Assert.All(versions, v => Assert.Equal(1, v.Version));
            await instances[0].Sagas.InsertAsync(new FileState { CorrelationId = Guid.NewGuid(), CurrentState = "Staging", Campaign = "prompt", Run = 1, Stream = "physics", LogicalName = "raw/a", UpdatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);
            Assert.Equal(1, (await instances[7].Sagas.CountByStateAsync(CancellationToken.None)).Single().Files);
            instances.ForEach(i => i.Dispose());
        }
        finally
        {
            await server.DropSchemaAsync(schema);
        }
    }

    [SkippableFact]
    public void Should_refuse_a_connection_string_that_carries_a_password_naming_only_the_host()
    {
        var refused = Assert.Throws<InvalidOperationException>(() =>
            PostgresConnection.Open(new Pipeline.Infrastructure.Hosting.PostgresOptions { ConnectionString = "Host=db7.example.org;Username=pipeline;Password=s3cret-word" }));

        Assert.Contains("db7.example.org", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-word", refused.Message, StringComparison.Ordinal);
    }
}

public sealed class When_storing_state_in_mongodb(MongoServer server) : StoreContract, IClassFixture<MongoServer>
{
    private MongoStoreContext? _store;

    protected override async Task<StoreBackend> CreateStoreAsync()
    {
        // A database per test, so tests never see each other's documents.
        _store = await MongoStoreContext.ConnectAsync(server.RequireUri(), "pipeline-test-" + Guid.NewGuid().ToString("N")[..12], CancellationToken.None);
        return StoreBackend.Mongo(_store);
    }

    protected override async Task DropStoreAsync()
    {
        if (_store is not null)
        {
            await _store.DropAsync(CancellationToken.None);
        }
    }

    public static TheoryData<string> ListingQueries() => ["files", "files by campaign and state", "files by stream after a cursor", "stalled", "pending outputs", "archive queue of a dataset", "catalog of a kind", "catalog of a kind and campaign"];

    /// <summary>What the server plans for each listing the stores make: an index scan, never a collection scan or a sort in memory.</summary>
    [SkippableTheory]
    [MemberData(nameof(ListingQueries))]
    public async Task Should_answer_every_listing_from_an_index_without_sorting_in_memory(string listing)
    {
        var context = _store!;
        await Store.Sagas.InsertAsync(new FileState { CorrelationId = Guid.NewGuid(), CurrentState = "Staging", Campaign = "prompt", Run = 1, Stream = "physics", LogicalName = "raw/a", UpdatedAt = DateTimeOffset.UtcNow }, CancellationToken.None);
        BsonDocument Render<T>(FilterDefinition<T> filter) => filter.Render(new RenderArgs<T>(BsonSerializer.LookupSerializer<T>(), BsonSerializer.SerializerRegistry));
        BsonDocument Order<T>(SortDefinition<T> sort) => sort.Render(new RenderArgs<T>(BsonSerializer.LookupSerializer<T>(), BsonSerializer.SerializerRegistry));
        var (collection, filter, sort) = listing switch
        {
            "files" => (MongoFileSagaStore.SagasCollection, Render(MongoFileSagaStore.Files(new FileQuery())), Order(MongoFileSagaStore.FileOrder)),
            "files by campaign and state" => (MongoFileSagaStore.SagasCollection, Render(MongoFileSagaStore.Files(new FileQuery("prompt", "Staging"))), Order(MongoFileSagaStore.FileOrder)),
            "files by stream after a cursor" => (MongoFileSagaStore.SagasCollection, Render(MongoFileSagaStore.Files(new FileQuery(Stream: "physics", After: FileCursor.Encode(1, "raw/a")))), Order(MongoFileSagaStore.FileOrder)),
            "stalled" => (MongoFileSagaStore.SagasCollection, Render(MongoFileSagaStore.Stalled(DateTimeOffset.UtcNow, null)), new BsonDocument()),
            "pending outputs" => (MongoMergeStore.OutputsCollection, Render(MongoMergeStore.Pending("prompt", "muon")), Order(MongoMergeStore.PendingOrder)),
            "archive queue of a dataset" => (MongoArchiveQueue.QueueCollection, Render(MongoArchiveQueue.From("prompt", "muon", 1)), new BsonDocument("sequence", 1)),
            "catalog of a kind" => (MongoRunCatalog.CatalogCollection, Render(MongoRunCatalog.CatalogOfKind("merged", null)), new BsonDocument { { "dataset", 1 }, { "name", 1 } }),
            _ => (MongoRunCatalog.CatalogCollection, Render(MongoRunCatalog.CatalogOfKind("merged", "prompt")), new BsonDocument { { "dataset", 1 }, { "name", 1 } }),
        };
        var find = new BsonDocument { { "find", collection }, { "filter", filter }, { "limit", 101 } };
        if (sort.ElementCount > 0)
        {
            find.Add("sort", sort);
        }

        var explained = await context.Database.RunCommandAsync<BsonDocument>(new BsonDocument { { "explain", find }, { "verbosity", "queryPlanner" } });

        var stages = Stages(explained["queryPlanner"]["winningPlan"]).ToList();
        Assert.DoesNotContain("COLLSCAN", stages);
        Assert.DoesNotContain("SORT", stages);
        Assert.Contains("IXSCAN", stages);
    }

    private static IEnumerable<string> Stages(BsonValue plan) => plan switch
    {
        BsonDocument document => (document.TryGetValue("stage", out var stage) && stage.IsString ? [stage.AsString] : Enumerable.Empty<string>())
            .Concat(document.Elements.SelectMany(e => Stages(e.Value))),
        BsonArray array => array.SelectMany(Stages),
        _ => [],
    };
}
