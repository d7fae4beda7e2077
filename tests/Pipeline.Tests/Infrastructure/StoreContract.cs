using Pipeline.Contracts;
using Pipeline.Infrastructure.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Infrastructure;

/// <summary>
/// What every state store must do, whatever the database: one suite, run against each implementation.
/// </summary>
public abstract class StoreContract : IAsyncLifetime
{
    private IPipelineStore? _created;

    protected IPipelineStore Store => _created ?? throw new InvalidOperationException("The store is not created yet.");

    /// <summary>A new, empty store for one test.</summary>
    protected abstract Task<IPipelineStore> CreateStoreAsync();

    protected virtual Task DropStoreAsync() => Task.CompletedTask;

    public async Task InitializeAsync() => _created = await CreateStoreAsync();

    public async Task DisposeAsync() => await DropStoreAsync();

    private static FileState WithState(FileState saga, string state)
    {
        saga.CurrentState = state;
        return saga;
    }

    private static FileState Saga(int run, string name, string state = "Staging") => new()
    {
        CorrelationId = Guid.NewGuid(),
        CurrentState = state,
        Campaign = "prompt",
        Run = run,
        Stream = "physics",
        LogicalName = name,
        UpdatedAt = DateTimeOffset.UtcNow,
    };

    [Fact]
    public async Task Should_load_what_was_inserted_with_its_history()
    {
        var saga = Saga(1, "a");
        saga.Record(DateTimeOffset.UnixEpoch, "Registered", "FileRegistered", "hello");
        await Store.InsertAsync(saga, CancellationToken.None);

        var loaded = await Store.LoadAsync(saga.CorrelationId, CancellationToken.None);

        Assert.NotNull(loaded);
        Assert.Equal("a", loaded.LogicalName);
        Assert.Equal("hello", Assert.Single(loaded.History).Detail);
    }

    [Fact]
    public async Task Should_refuse_a_second_insert_of_the_same_saga()
    {
        var saga = Saga(1, "a");
        await Store.InsertAsync(saga, CancellationToken.None);
        await Assert.ThrowsAsync<ConcurrencyConflictException>(() => Store.InsertAsync(saga, CancellationToken.None));
    }

    [Fact]
    public async Task Should_let_exactly_one_of_many_parallel_writers_win_each_version()
    {
        var saga = Saga(1, "a");
        await Store.InsertAsync(saga, CancellationToken.None);

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 8).Select(async writer =>
        {
            var copy = (await Store.LoadAsync(saga.CorrelationId, CancellationToken.None))!;
            copy.FailureReason = $"writer {writer}";
            try
            {
                await Store.UpdateAsync(copy, 0, CancellationToken.None);
                return true;
            }
            catch (ConcurrencyConflictException)
            {
                return false;
            }
        }));

        Assert.Equal(1, outcomes.Count(won => won));
        var stored = (await Store.LoadAsync(saga.CorrelationId, CancellationToken.None))!;
        Assert.Equal(1, stored.Version);
        Assert.Equal($"writer {Array.IndexOf(outcomes, true)}", stored.FailureReason);
    }

    [Fact]
    public async Task Should_page_through_files_in_run_and_name_order_with_filters()
    {
        for (var run = 3; run >= 1; run--)
        {
            foreach (var name in new[] { "c", "a", "b" })
            {
                await Store.InsertAsync(Saga(run, $"{run}/{name}", run == 2 ? "Failed" : "Staging"), CancellationToken.None);
            }
        }

        var seen = new List<string>();
        string? after = null;
        do
        {
            var page = await Store.ListAsync(new FileQuery(After: after, Limit: 4), CancellationToken.None);
            seen.AddRange(page.Files.Select(f => f.LogicalName));
            after = page.Next;
        }
        while (after is not null);

        Assert.Equal(["1/a", "1/b", "1/c", "2/a", "2/b", "2/c", "3/a", "3/b", "3/c"], seen);
        Assert.Equal(3, (await Store.ListAsync(new FileQuery(State: "Failed"), CancellationToken.None)).Files.Count);
        Assert.Equal(6, (await Store.ListAsync(new FileQuery(RunFrom: 2), CancellationToken.None)).Files.Count);
        Assert.Equal(3, (await Store.ListAsync(new FileQuery(RunFrom: 1, RunTo: 1), CancellationToken.None)).Files.Count);
        Assert.Contains(await Store.CountByStateAsync(CancellationToken.None), c => c is { State: "Failed", Files: 3 });
        Assert.Throws<FormatException>(() => FileCursor.Decode("not-a-cursor!"));
    }

    [Fact]
    public async Task Should_keep_the_counts_per_state_as_files_move()
    {
        var a = Saga(1, "a");
        var b = Saga(1, "b");
        await Store.InsertAsync(a, CancellationToken.None);
        await Store.InsertAsync(b, CancellationToken.None);
        a.CurrentState = "Archived";
        await Store.UpdateAsync(a, 0, CancellationToken.None);
        a.FailureReason = "same state, other change";
        await Store.UpdateAsync(a, 1, CancellationToken.None);
        await Assert.ThrowsAsync<ConcurrencyConflictException>(() => Store.UpdateAsync(WithState(b, "Failed"), 7, CancellationToken.None));

        var counts = await Store.CountByStateAsync(CancellationToken.None);

        Assert.Equal([("Archived", 1L), ("Staging", 1L)], counts.Select(c => (c.State, c.Files)));
    }

    [Fact]
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
            await Store.InsertAsync(saga, CancellationToken.None);
        }

        var stalled = await Store.FindStalledAsync(DateTimeOffset.UtcNow, null, 10, CancellationToken.None);
        Assert.Equal([late.CorrelationId], stalled.Select(s => s.Id));

        var notTouchedSinceStart = await Store.FindStalledAsync(DateTimeOffset.UtcNow, DateTimeOffset.UtcNow.AddSeconds(1), 10, CancellationToken.None);
        Assert.Equal(2, notTouchedSinceStart.Count);
    }

    [Fact]
    public async Task Should_register_a_run_once_and_refuse_it_with_other_files()
    {
        CatalogEntry Raw(string name, long size) => new(name, "archive", CatalogEntry.Raw, null, null, size, "00000001", 1, [], DateTimeOffset.UtcNow);

        Assert.Equal(RunRegistration.New, await Store.RegisterRunAsync(7, "digest-1", [Raw("r/a", 1)], CancellationToken.None));
        Assert.Equal(RunRegistration.AlreadyRegistered, await Store.RegisterRunAsync(7, "digest-1", [Raw("r/a", 1)], CancellationToken.None));
        Assert.Equal(RunRegistration.Conflicting, await Store.RegisterRunAsync(7, "digest-2", [Raw("r/a", 2)], CancellationToken.None));
        // Another run claiming a file already catalogued with other content is refused whole.
        Assert.Equal(RunRegistration.Conflicting, await Store.RegisterRunAsync(8, "digest-3", [Raw("r/b", 1), Raw("r/a", 5)], CancellationToken.None));
        Assert.Empty(await Store.FindAsync("r/b", CancellationToken.None));
        Assert.Single(await Store.ListRunsAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Should_commit_a_merge_only_if_none_of_its_outputs_was_taken()
    {
        PendingOutput Output(string id) => new(id, Guid.NewGuid(), "prompt", "muon", 1, "physics", 1, "raw", $"jobs/{id}", 10, "00000001", 2, DateTimeOffset.UtcNow, null);
        MergedFileRecord Merged(string name) => new(name, "prompt", "muon", 20, "00000001", 4, false, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow);
        foreach (var id in new[] { "o1", "o2", "o3" })
        {
            await Store.AddOutputAsync(Output(id), CancellationToken.None);
        }
        Assert.Equal(10, (await Store.AddOutputAsync(Output("o1"), CancellationToken.None)).Size);

        Assert.True(await Store.CommitMergeAsync(Merged("m1"), ["o1", "o2"], CancellationToken.None));
        Assert.False(await Store.CommitMergeAsync(Merged("m2"), ["o2", "o3"], CancellationToken.None));

        Assert.Null(await Store.GetMergedFileAsync("m2", CancellationToken.None));
        Assert.Equal(["o3"], (await Store.ListPendingAsync("prompt", "muon", 10, CancellationToken.None)).Select(o => o.OutputId));
        Assert.Equal("m1", (await Store.AddOutputAsync(Output("o2"), CancellationToken.None)).MergedName);
        var buffer = Assert.Single(await Store.ListBuffersAsync(CancellationToken.None));
        Assert.Equal((1, 10L), (buffer.Outputs, buffer.Bytes));

        await Store.MarkArchivedAsync("m1", CancellationToken.None);
        Assert.True((await Store.GetMergedFileAsync("m1", CancellationToken.None))!.Archived);
        Assert.Empty(await Store.ListUnarchivedAsync(DateTimeOffset.UtcNow.AddMinutes(1), CancellationToken.None));
    }

    [Fact]
    public async Task Should_keep_catalog_entries_unique_by_name_and_area()
    {
        var entry = new CatalogEntry("merged/x", "archive", CatalogEntry.Merged, "prompt", "muon", 5, "00000001", 1,
            [new MergedSource(Guid.NewGuid(), 1, "physics", "raw/a", "o1")], DateTimeOffset.UtcNow);
        await Store.AddAsync(entry, CancellationToken.None);
        await Store.AddAsync(entry, CancellationToken.None);
        await Assert.ThrowsAsync<ConcurrencyConflictException>(() => Store.AddAsync(entry with { Adler32 = "00000002" }, CancellationToken.None));
        var found = Assert.Single(await Store.FindAsync("merged/x", CancellationToken.None));
        Assert.Equal("o1", Assert.Single(found.Sources).OutputId);
    }
}

public sealed class When_storing_state_in_sqlite : StoreContract
{
    private readonly TempDirectory _folder = new();

    protected override Task<IPipelineStore> CreateStoreAsync() =>
        Task.FromResult<IPipelineStore>(new SqlitePipelineStore(Path.Combine(_folder.Path, "pipeline.db")));

    protected override Task DropStoreAsync()
    {
        _folder.Dispose();
        return Task.CompletedTask;
    }
}
