using System.Net;
using System.Net.Http.Json;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Contracts;
using Pipeline.EventFormat;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Production.State;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

/// <summary>
/// Strict ordering waits for a late file of an earlier run (and says so when it waits too long); relaxed merges
/// what is ready. The buffer and the sagas are set up directly in the store: the late file never finishes.
/// </summary>
public sealed class When_a_dataset_waits_for_a_late_file_of_an_earlier_run
{
    private const string Campaign = "prompt";

    [Fact]
    public async Task Should_merge_nothing_of_later_runs_under_strict_order_raise_an_alert_and_merge_once_relaxed()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Flow:StrictWaitSeconds"] = "1",
            ["Pipeline:Merger:FlushIdleSeconds"] = "0.2",
            ["Pipeline:Merger:MaxWaitSeconds"] = "0.2",
        });
        var sagas = pipeline.Sagas;
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        var health = pipeline.Services.GetRequiredService<IHealthStore>();
        // Run 1 still has a file in reconstruction; run 2's file is done and its output waits in the buffer.
        await sagas.InsertAsync(Saga(1, "raw/run1/late.raw", "Reconstructing"), CancellationToken.None);
        var done = Saga(2, "raw/run2/done.raw", "Reconstructed");
        await sagas.InsertAsync(done, CancellationToken.None);
        await merges.AddOutputAsync(await OutputAsync(pipeline, done, "muon"), CancellationToken.None);
        // What the two sagas would have reported to the merger's ledger: run 1's file open, run 2's closed with one output.
        var ledger = pipeline.Services.GetRequiredService<IRunLedger>();
        await ledger.RecordAsync(new RunFileProgress(Guid.NewGuid(), 1, "physics", Campaign, 1, true, []), CancellationToken.None);
        await ledger.RecordAsync(new RunFileProgress(done.CorrelationId, 2, "physics", Campaign, 2, false, [new DatasetOutputs("muon", 1)]), CancellationToken.None);

        var alert = await Eventually.Until(() => health.ListAlertsAsync(activeOnly: true, 10, CancellationToken.None),
            alerts => alerts.Any(a => a.Key == $"merge-order:{Campaign}/muon"), TimeSpan.FromMinutes(2), "the merge-order alert",
            alerts => string.Join(", ", alerts.Select(a => a.Key)));
        Assert.Contains("waited", alert.Single(a => a.Kind == "merge-order").Message);
        Assert.Single(await merges.ListPendingAsync(Campaign, "muon", 10, CancellationToken.None));
        Assert.Empty(await merges.ListUnarchivedAsync(DateTimeOffset.UtcNow.AddMinutes(1), CancellationToken.None));

        var relaxed = await pipeline.Http.PutAsJsonAsync("/api/flow/datasets/muon", new { ordering = "relaxed" });
        Assert.Equal(HttpStatusCode.Accepted, relaxed.StatusCode);
        await Eventually.Until(() => merges.ListPendingAsync(Campaign, "muon", 10, CancellationToken.None), pending => pending.Count == 0,
            TimeSpan.FromMinutes(2), "the waiting output merged");
        await Eventually.Until(() => health.ListAlertsAsync(activeOnly: true, 10, CancellationToken.None),
            alerts => alerts.All(a => a.Kind != "merge-order"), TimeSpan.FromMinutes(2), "the merge-order alert resolved");
    }

    private static FileState Saga(int run, string name, string state) => new()
    {
        CorrelationId = Guid.NewGuid(),
        CurrentState = state,
        Campaign = Campaign,
        Run = run,
        Stream = "physics",
        LogicalName = name,
        UpdatedAt = DateTimeOffset.UtcNow,
        // Far off: the watchdog leaves these files alone for the test's length.
        Deadline = DateTimeOffset.UtcNow.AddDays(1),
    };

    /// <summary>A real output file in the unmerged area, as reconstruction would leave it.</summary>
    internal static async Task<PendingOutput> OutputAsync(PipelineUnderTest pipeline, FileState saga, string dataset)
    {
        var name = $"jobs/{Campaign}/run{saga.Run:D6}/{saga.CorrelationId:N}/out/{dataset}.evt";
        var (size, adler) = await pipeline.Areas.Unmerged.WriteAsync(name, async (stream, ct) =>
        {
            await using var writer = await EventWriter.CreateAsync(stream, leaveOpen: true, ct);
            for (var i = 0; i < 5; i++)
            {
                await writer.WriteAsync(new EventRecord(saga.Run, 1, i, 1, new byte[] { 1, 2, 3 }), ct);
            }
        }, CancellationToken.None);
        return new PendingOutput($"{saga.CorrelationId:N}-{dataset}", saga.CorrelationId, Campaign, dataset, saga.Run, saga.Stream, 1,
            saga.LogicalName, name, size, Adler32Checksum.Format(adler), 5, DateTimeOffset.UtcNow, null);
    }
}

public sealed class When_a_files_report_to_the_merger_was_lost
{
    [Fact]
    public async Task Should_be_made_good_when_the_merger_waits_on_its_run_and_asks_for_the_reports_again()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Merger:FlushIdleSeconds"] = "0.2",
            ["Pipeline:Merger:MaxWaitSeconds"] = "0.2",
            ["Pipeline:Merger:LedgerResendSeconds"] = "1",
            // The saga below stands for a file of a running system: the watchdog's start-up recovery of files not
            // touched since it started (the in-memory transport lost them) must not take it for one, whenever its
            // first pass runs.
            ["Pipeline:Orchestrator:RecoverInFlightOnStart"] = "false",
        });
        var ledger = pipeline.Services.GetRequiredService<IRunLedger>();
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        // Run 1's file was reconstructed with one muon output, but its closing report was lost: the ledger still has it open.
        var reconstructed = new FileState
        {
            CorrelationId = Guid.NewGuid(), CurrentState = FileStates.Reconstructed, Campaign = "prompt", Run = 1, Stream = "physics",
            LogicalName = "raw/run1/lost-report.raw", UpdatedAt = DateTimeOffset.UtcNow, Deadline = DateTimeOffset.UtcNow.AddDays(1),
        };
        reconstructed.Outputs.Add(new TrackedOutput { Output = new OutputFile("o-lost", "muon", "jobs/lost/muon.evt", 10, "00000001", 5, 1, 1) });
        reconstructed.Record(DateTimeOffset.UtcNow, FileStates.Registered, "FileRegistered");
        reconstructed.Record(DateTimeOffset.UtcNow, FileStates.Reconstructed, "FileReconstructed");
        await pipeline.Sagas.InsertAsync(reconstructed, CancellationToken.None);
        await ledger.RecordAsync(new RunFileProgress(reconstructed.CorrelationId, 1, "physics", "prompt", 1, true, []), CancellationToken.None);
        // Run 2's output waits for run 1.
        var later = new FileState { CorrelationId = Guid.NewGuid(), Campaign = "prompt", Run = 2, Stream = "physics", LogicalName = "raw/run2/done.raw" };
        await merges.AddOutputAsync(await When_a_dataset_waits_for_a_late_file_of_an_earlier_run.OutputAsync(pipeline, later, "muon"), CancellationToken.None);
        await ledger.RecordAsync(new RunFileProgress(later.CorrelationId, 2, "physics", "prompt", 2, false, [new DatasetOutputs("muon", 1)]), CancellationToken.None);

        // The merger asks; the orchestrator has run 1's file report from its saga; the ledger has it closed with its output.
        await Eventually.Until(() => ledger.CountReportedOutputsAsync("prompt", "muon", 1, 1, CancellationToken.None), reported => reported.GetValueOrDefault(1) == 1,
            TimeSpan.FromMinutes(1), "run 1's output reported again");
        Assert.Null(await ledger.OldestOpenRunAsync("prompt", CancellationToken.None));
        Assert.Single(await merges.ListPendingAsync("prompt", "muon", 10, CancellationToken.None));
    }
}

public sealed class When_a_merger_stopped_between_committing_a_merged_file_and_moving_it_into_place
{
    [Fact]
    public async Task Should_move_it_into_place_on_start_or_make_it_again_if_it_is_gone()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var merges = pipeline.Services.GetRequiredService<IMergeStore>();
        var health = pipeline.Services.GetRequiredService<IHealthStore>();
        var at = DateTimeOffset.UtcNow;
        // One committed file left under its uncommitted name, one whose file is gone altogether (and whose inputs are too).
        const string Placed = "prompt/muon/muon_run000001-000001_committed.evt";
        const string Gone = "prompt/muon/muon_run000002-000002_gone.evt";
        await pipeline.Areas.Output.WriteAsync(Merger.MergeService.UncommittedName(Placed), (stream, ct) => stream.WriteAsync(new byte[] { 1, 2, 3 }, ct).AsTask(), CancellationToken.None);
        Assert.NotNull(await merges.CommitMergeAsync(new MergedFileRecord(Placed, "prompt", "muon", 3, "00000001", 1, false, at, at), [], CancellationToken.None));
        Assert.NotNull(await merges.CommitMergeAsync(new MergedFileRecord(Gone, "prompt", "muon", 3, "00000001", 1, false, at, at), [], CancellationToken.None));

        // A merger instance starting now, beside the running one.
        var merger = ActivatorUtilities.CreateInstance<Merger.MergeService>(pipeline.Services);
        await merger.StartAsync(CancellationToken.None);
        try
        {
            await Eventually.Until(() => Task.FromResult(pipeline.Areas.Output.Exists(Placed)), placed => placed, TimeSpan.FromSeconds(30), "the committed file in place");
            Assert.False(pipeline.Areas.Output.Exists(Merger.MergeService.UncommittedName(Placed)));
            // Its inputs are gone too, so it cannot be made again: the operators are told.
            await Eventually.Until(() => health.ListAlertsAsync(activeOnly: true, 10, CancellationToken.None),
                alerts => alerts.Any(a => a.Key == Merger.RemakeMergedFileConsumer.AlertKey(Gone)), TimeSpan.FromSeconds(30), "the alert for the file that is gone");
        }
        finally
        {
            await merger.StopAsync(CancellationToken.None);
        }
    }
}
