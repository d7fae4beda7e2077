using Pipeline.Api;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;

namespace Pipeline.Tests.Campaigns;

public sealed class When_a_campaign_is_defined
{
    private static readonly string[] Archives = ["archive", "archive-copy"];

    public static CampaignDefinition Valid(string name = "reco-2026a") => new()
    {
        Name = name,
        Kind = CampaignKinds.Reprocessing,
        Release = new ReleaseSpec { Version = "sample-2.0", Executable = "{appdir}/Pipeline.SampleExperiment", Arguments = ["reconstruct", "--input", "{input}", "--calib", "{calibration}"] },
        CalibrationTag = "align-v2",
        Selection = new InputSelection { Streams = ["physics"], RunFrom = 1000, RunTo = 1010 },
        Datasets = new Dictionary<string, uint> { ["muon"] = 3, ["jet"] = 24 },
        Copies = ["archive", "archive-copy"],
        Priority = 3,
        Batch = new BatchResources { Partition = "long", Account = "reco", CpusPerJob = 4, MemoryMegabytes = 8000 },
    };

    [Fact]
    public void Should_accept_a_complete_definition()
    {
        Assert.Empty(CampaignValidation.Validate(Valid(), Archives));
    }

    [Fact]
    public void Should_list_every_problem_of_a_bad_definition_by_field()
    {
        var bad = new CampaignDefinition
        {
            Name = "../etc",
            Kind = "weekly",
            Release = new ReleaseSpec { Version = "", Executable = "{shell}", Arguments = ["{input}", "$(rm)", "{nope}"], TimeoutSeconds = 0 },
            RequireCalibration = true,
            Selection = new InputSelection { RunFrom = 20, RunTo = 10, Streams = ["bad stream"] },
            Datasets = new Dictionary<string, uint> { ["muon"] = 0 },
            MergeTargetBytes = -1,
            Copies = ["archive", "archive", "nowhere"],
            Priority = 0,
            MaxAttempts = 101,
            EventsMultiple = 2,
            Batch = new BatchResources { Partition = "long;rm", Qos = "", CpusPerJob = 0, MemoryMegabytes = int.MaxValue },
        };

        var errors = CampaignValidation.Validate(bad, Archives);

        Assert.Equal(
            ["batch.cpusPerJob", "batch.memoryMegabytes", "batch.partition", "batch.qos", "copies", "datasets.muon", "eventsMultiple", "kind", "maxAttempts", "mergeTargetBytes", "name", "priority", "release.arguments[2]",
             "release.executable", "release.timeoutSeconds", "release.version", "requireCalibration", "selection.runTo", "selection.streams"],
            errors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(2, errors["copies"].Length);
        Assert.Contains("{nope}", errors["release.arguments[2]"].Single(), StringComparison.Ordinal);
        Assert.Equal(["a campaign definition is required"], CampaignValidation.Validate(null, Archives)["body"]);
    }

    [Fact]
    public void Should_tell_a_repeated_definition_from_another_whatever_its_priority_or_dataset_order()
    {
        var again = Valid() with { Priority = 1, Datasets = new Dictionary<string, uint> { ["jet"] = 24, ["muon"] = 3 } };
        Assert.Equal(Valid().Digest(), again.Digest());
        Assert.NotEqual(Valid().Digest(), (Valid() with { CalibrationTag = "align-v3" }).Digest());
        Assert.NotEqual(Valid().Digest(), (Valid() with { Batch = Valid().Batch! with { MemoryMegabytes = 16000 } }).Digest());
    }

    [Fact]
    public void Should_select_files_by_run_range_stream_and_name()
    {
        var selection = new InputSelection { Streams = ["physics"], RunFrom = 10, RunTo = 20, Files = ["a", "b"] };
        Assert.True(selection.Matches(10, "physics", "a"));
        Assert.False(selection.Matches(9, "physics", "a"));
        Assert.False(selection.Matches(21, "physics", "a"));
        Assert.False(selection.Matches(15, "express", "a"));
        Assert.False(selection.Matches(15, "physics", "c"));
        Assert.True(new InputSelection().Matches(1, "any", "x"));
    }
}

public sealed class When_a_campaign_forecast_is_made
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-11-26T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static CampaignProgress At(double minutes, long registered, long staged, long reconstructed, long merged, long archived) =>
        new(Start.AddMinutes(minutes), registered, staged, reconstructed, merged, archived, 0, 0);

    [Fact]
    public void Should_name_the_slowest_stage_and_finish_when_it_does()
    {
        // In ten minutes: 400 files staged, 100 reconstructed, 100 merged, 90 archived, of 1,000.
        var forecast = CampaignForecast.From(1000, [At(0, 1000, 100, 0, 0, 0), At(10, 1000, 500, 100, 100, 90)]);

        Assert.Equal((1000L, 90L, 910L), (forecast.Files, forecast.Done, forecast.Remaining));
        Assert.Equal([40.0, 10.0, 10.0, 9.0], forecast.Stages.Select(s => s.FilesPerMinute));
        Assert.Equal([500L, 900L, 900L, 910L], forecast.Stages.Select(s => s.Remaining));
        // Archiving 910 files at 9 a minute takes longest: 101.1 minutes.
        Assert.Equal("archive", forecast.Bottleneck);
        Assert.InRange((forecast.EstimatedCompletion!.Value - Start).TotalMinutes, 111.10, 111.12);
    }

    [Fact]
    public void Should_give_no_completion_while_a_stage_with_work_has_not_moved()
    {
        var forecast = CampaignForecast.From(100, [At(0, 100, 10, 0, 0, 0), At(5, 100, 60, 0, 0, 0)]);
        Assert.Equal("reconstruction", forecast.Bottleneck);
        Assert.Null(forecast.EstimatedCompletion);
    }

    [Fact]
    public void Should_be_done_when_every_file_is_archived_failed_or_cancelled()
    {
        var done = new CampaignProgress(Start, 10, 8, 8, 8, 8, 1, 1);
        var forecast = CampaignForecast.From(10, [done]);
        Assert.Equal((0L, (string?)null, (DateTimeOffset?)Start), (forecast.Remaining, forecast.Bottleneck, forecast.EstimatedCompletion));
    }

    [Fact]
    public void Should_count_files_past_each_stage_from_the_state_counts()
    {
        var counts = new StateCount[]
        {
            new("reco", "Staging", 5), new("reco", "Staged", 4), new("reco", "Reconstructing", 3), new("reco", "Merged", 2),
            new("reco", "Archived", 1), new("reco", "Failed", 6), new("other", "Archived", 100),
        };
        var progress = CampaignProgress.From("reco", counts, Start);
        Assert.Equal((21L, 10L, 3L, 3L, 1L, 6L), (progress.Registered, progress.Staged, progress.Reconstructed, progress.Merged, progress.Archived, progress.Failed));
    }
}
