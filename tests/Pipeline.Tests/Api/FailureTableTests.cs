using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Api;

public sealed class When_a_release_fails_systematically
{
    [Fact]
    public async Task Should_show_one_failure_row_and_retry_its_files_with_one_request()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: PipelineUnderTest.EveryFileFailsItsOneAttempt());
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 1, EventsPerFile: 30));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);

        var failures = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/failures");
        var row = Assert.Single(failures.EnumerateArray());
        Assert.Equal(4, row.GetProperty("files").GetInt64());
        Assert.Equal("reconstruction", row.GetProperty("stage").GetString());
        Assert.Equal("reconstruction exit 3: ERROR simulated failure on attempt <n> (fails up to attempt <n>)", row.GetProperty("signature").GetString());
        Assert.Equal("sample-1.0", row.GetProperty("release").GetString());
        var signature = row.GetProperty("id").GetString();
        var summary = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary");
        Assert.Equal(signature, Assert.Single(summary.GetProperty("failures").EnumerateArray()).GetProperty("id").GetString());
        var listed = await pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/files?signature={signature}");
        Assert.Equal(4, listed.GetProperty("files").GetArrayLength());
        Assert.Equal(0, (await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/files?signature=000000000000")).GetProperty("files").GetArrayLength());

        using var viewer = pipeline.Client(PipelineUnderTest.ViewerKey);
        Assert.Equal(HttpStatusCode.Forbidden, (await viewer.PostAsJsonAsync("/api/files/retry", new { signature })).StatusCode);
        var badOptions = await pipeline.Http.PostAsJsonAsync("/api/files/retry", new { signature, extraAttempts = -1 });
        Assert.Equal(HttpStatusCode.BadRequest, badOptions.StatusCode);

        Assert.Equal(HttpStatusCode.BadRequest, (await pipeline.Http.PostAsJsonAsync("/api/files/retry", new { signature, limit = 0 })).StatusCode);

        // The preview counts and touches nothing; a limit retries no more than it says.
        var preview = await (await pipeline.Http.PostAsJsonAsync("/api/files/retry", new { signature, dryRun = true })).Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal((4, 0), (preview.GetProperty("matched").GetInt32(), preview.GetProperty("retried").GetInt32()));
        Assert.Equal(4, (await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/files?state=Failed")).GetProperty("files").GetArrayLength());
        var first = await pipeline.Http.PostAsJsonAsync("/api/files/retry", new { signature, extraAttempts = 1, limit = 1 });
        Assert.Equal(1, (await first.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("retried").GetInt32());
        await Eventually.Until(pipeline.AllFilesAsync, files => files.Count(f => f.CurrentState == "Failed") == 3, TimeSpan.FromMinutes(1),
            "the one file retried to leave Failed", files => string.Join(", ", files.Select(f => f.CurrentState)));

        var retry = await pipeline.Http.PostAsJsonAsync("/api/files/retry", new { signature, extraAttempts = 1 });
        Assert.Equal(HttpStatusCode.Accepted, retry.StatusCode);
        Assert.Equal(3, (await retry.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("retried").GetInt32());

        await Eventually.Until(pipeline.AllFilesAsync, files => files.All(f => f.CurrentState == "Archived"), TimeSpan.FromMinutes(2),
            "every retried file to be archived", files => string.Join(", ", files.Select(f => f.CurrentState)));
        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        Assert.Empty((await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/failures")).EnumerateArray());
        var again = await pipeline.Http.PostAsJsonAsync("/api/files/retry", new { signature });
        Assert.Equal(0, (await again.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("retried").GetInt32());
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Contains(f.History, h => h.Detail == "retried by test-operator, 1 extra attempts"));
    }
}
