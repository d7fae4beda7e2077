using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Cli;

/// <summary>
/// The `pipeline` command line as an operator has it: installed as a .NET tool, run as a program against a running
/// pipeline's admin API, its output compared with what the API answers.
/// </summary>
public sealed class When_an_operator_uses_the_pipeline_command_line(InstalledCommandLine cli) : IClassFixture<InstalledCommandLine>
{
    private static Dictionary<string, string> As(PipelineUnderTest pipeline, string key) => new()
    {
        ["PIPELINE_URL"] = pipeline.Http.BaseAddress!.ToString(),
        ["PIPELINE_API_KEY"] = key,
    };

    private static void SameJson(JsonElement fromApi, ToolRun run)
    {
        Assert.True(run.ExitCode == 0, run.ToString());
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(fromApi.GetRawText()), JsonNode.Parse(run.Output)), $"the API answered {fromApi}\nbut {run}");
    }

    [Fact]
    public async Task Should_show_failed_files_as_the_api_does_and_retry_them_after_a_preview()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: PipelineUnderTest.EveryFileFailsItsOneAttempt());
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 1, EventsPerFile: 30));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);
        var operatorKey = As(pipeline, PipelineUnderTest.OperatorKey);
        var everything = new List<ToolRun>();
        async Task<ToolRun> Pipeline(params string[] args)
        {
            var run = await cli.RunAsync(operatorKey, args);
            everything.Add(run);
            return run;
        }

        // Reading: the JSON is the API's, the tables carry its numbers.
        var summary = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/summary");
        var status = await Pipeline("status", "--json");
        SameJson(summary, new ToolRun(status.ExitCode, JsonDocument.Parse(status.Output).RootElement.GetProperty("summary").GetRawText(), status.Errors));
        var statusTable = await Pipeline("status");
        Assert.Matches(@"│ prompt +│ 4 +│ 4 +│", statusTable.Output);
        Assert.Contains("Failed", statusTable.Output);
        var signature = summary.GetProperty("failures")[0].GetProperty("id").GetString()!;
        Assert.Contains(signature, statusTable.Output);
        SameJson(await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/runs"), await Pipeline("runs", "--json"));
        var failed = await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/files?state=Failed&campaign=prompt");
        SameJson(failed, await Pipeline("files", "--state", "Failed", "--campaign", "prompt", "--json"));
        var ids = failed.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("id").GetString()!).ToList();
        Assert.Equal(4, ids.Count);
        var filesTable = await Pipeline("files", "--state", "Failed");
        Assert.All(ids, id => Assert.Contains(id, filesTable.Output));
        Assert.Contains("4 files.", filesTable.Output);
        var paged = await Pipeline("files", "--limit", "1", "--all", "--json");
        Assert.Equal(ids.Order(), JsonDocument.Parse(paged.Output).RootElement.GetProperty("files").EnumerateArray().Select(f => f.GetProperty("id").GetString()!).Order());

        var file = await pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/files/{ids[0]}");
        SameJson(file, await Pipeline("file", ids[0], "--json"));
        var fileTable = await Pipeline("file", ids[0]);
        Assert.Contains("ReconstructionFailed", fileTable.Output);
        Assert.Contains(file.GetProperty("traceId").GetString()!, fileTable.Output);
        // A file is found by its logical name and by its trace id as well.
        SameJson(file, await Pipeline("file", file.GetProperty("logicalName").GetString()!, "--json"));
        SameJson(file, await Pipeline("file", file.GetProperty("traceId").GetString()!, "--json"));
        var runNumber = file.GetProperty("run").GetInt32().ToString(System.Globalization.CultureInfo.InvariantCulture);
        SameJson(await pipeline.Http.GetFromJsonAsync<JsonElement>($"/api/runs/{runNumber}"), await Pipeline("run", runNumber, "--json"));
        var runTable = await Pipeline("run", runNumber);
        Assert.Contains("Failed", runTable.Output);
        Assert.Contains(file.GetProperty("failureReason").GetString()!, runTable.Output);
        Assert.Contains(file.GetProperty("logicalName").GetString()!, fileTable.Output);
        var logs = file.GetProperty("logNames").EnumerateArray().Select(l => l.GetString()!).ToList();
        Assert.NotEmpty(logs);
        Assert.Equal(logs, (await Pipeline("logs", ids[0])).Output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        var jobLog = logs.First(l => l.EndsWith("job.log", StringComparison.Ordinal));
        Assert.Equal(await pipeline.Http.GetStringAsync($"/api/logs/{jobLog}"), (await Pipeline("logs", jobLog)).Output);

        // A bulk retry shows how many files match before it acts, refuses more than its cap, and asks to be confirmed.
        var unconfirmed = await Pipeline("retry", "--signature", signature);
        Assert.True(unconfirmed.ExitCode == 2, unconfirmed.ToString());
        Assert.Contains("4 failed files match", unconfirmed.Errors);
        var preview = await Pipeline("retry", "--signature", signature, "--dry-run");
        Assert.True(preview.ExitCode == 0 && preview.Output.Contains("4 failed files match", StringComparison.Ordinal), preview.ToString());
        var overCap = await Pipeline("retry", "--signature", signature, "--max", "3", "--yes");
        Assert.True(overCap.ExitCode == 1 && overCap.Errors.Contains("more than --max 3", StringComparison.Ordinal), overCap.ToString());
        Assert.Equal(4, (await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/files?state=Failed")).GetProperty("files").GetArrayLength());
        var retried = await Pipeline("retry", "--signature", signature, "--extra-attempts", "1", "--yes");
        Assert.True(retried.ExitCode == 0 && retried.Output.Contains("4 failed files retried", StringComparison.Ordinal), retried.ToString());
        await Eventually.Until(pipeline.AllFilesAsync, files => files.All(f => f.CurrentState == "Archived"), TimeSpan.FromMinutes(2),
            "every retried file archived", files => string.Join(", ", files.Select(f => f.CurrentState)));

        // The checks: exit 0 when they pass, the API's report as JSON.
        var audit = await Pipeline("audit", "prompt");
        Assert.True(audit.ExitCode == 0 && audit.Output.Contains("Complete.", StringComparison.Ordinal), audit.ToString());
        SameJson(await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/campaigns/prompt/audit"), await Pipeline("audit", "prompt", "--json"));
        var reconcile = await Pipeline("reconcile", "--dry-run");
        Assert.True(reconcile.ExitCode == 0 && reconcile.Output.Contains("Clean.", StringComparison.Ordinal), reconcile.ToString());
        Assert.Equal(1, (await Pipeline("audit", "no-such-campaign")).ExitCode);

        // Controls: what the command says is what the API then reports.
        Assert.Equal(0, (await Pipeline("pause", "stage", "merger")).ExitCode);
        Assert.Contains((await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/stages")).EnumerateArray(),
            s => s.GetProperty("stage").GetString() == "merger" && s.GetProperty("paused").GetBoolean());
        Assert.Contains("Stage merger is running.", (await Pipeline("resume", "stage", "merger")).Output);
        var pausedCampaign = await Pipeline("pause", "campaign", "prompt", "--json");
        Assert.True(JsonDocument.Parse(pausedCampaign.Output).RootElement.GetProperty("paused").GetBoolean(), pausedCampaign.ToString());
        Assert.Contains((await pipeline.Http.GetFromJsonAsync<JsonElement>("/api/campaigns")).EnumerateArray(),
            c => c.GetProperty("campaign").GetString() == "prompt" && c.GetProperty("paused").GetBoolean());
        Assert.Equal(0, (await Pipeline("resume", "campaign", "prompt")).ExitCode);
        var drained = await Pipeline("drain", "reconstruction", "--wait");
        Assert.True(drained.ExitCode == 0 && drained.Output.Contains("is drained", StringComparison.Ordinal), drained.ToString());
        Assert.Equal(0, (await Pipeline("resume", "stage", "reconstruction")).ExitCode);

        Assert.All(everything, run => Assert.DoesNotContain(PipelineUnderTest.OperatorKey, run.Output + run.Errors, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Should_exit_with_a_code_that_says_what_went_wrong_and_never_echo_the_key()
    {
        await using var pipeline = await PipelineUnderTest.StartAsync();
        var viewer = As(pipeline, PipelineUnderTest.ViewerKey);
        var url = new Dictionary<string, string> { ["PIPELINE_URL"] = pipeline.Http.BaseAddress!.ToString() };

        // 3: no key, a wrong key, a viewer's key for an action.
        var noKey = await cli.RunAsync(url, "runs");
        Assert.True(noKey.ExitCode == 3 && noKey.Errors.Contains("needs a key", StringComparison.Ordinal), noKey.ToString());
        var wrong = await cli.RunAsync(new Dictionary<string, string>(url) { ["PIPELINE_API_KEY"] = "not-a-key-of-this-installation" }, "runs");
        Assert.True(wrong.ExitCode == 3 && !wrong.Errors.Contains("not-a-key", StringComparison.Ordinal), wrong.ToString());
        var forbidden = await cli.RunAsync(viewer, "pause", "stage", "merger");
        Assert.True(forbidden.ExitCode == 3 && forbidden.Errors.Contains("operator's key", StringComparison.Ordinal), forbidden.ToString());

        // 2: the command line itself is wrong.
        foreach (var usage in new[] { new[] { "files", "--limit", "many" }, ["run", "not-a-number"], ["pause", "everything", "now"], ["retry"], ["no-such-command"] })
        {
            var run = await cli.RunAsync(viewer, usage);
            Assert.True(run.ExitCode == 2 && run.Errors.Length > 0, $"{string.Join(' ', usage)}: {run}");
        }
        var userInUrl = await cli.RunAsync(new Dictionary<string, string> { ["PIPELINE_URL"] = "http://ops:secret-password@127.0.0.1:1/" }, "runs");
        Assert.True(userInUrl.ExitCode == 2 && !userInUrl.Errors.Contains("secret-password", StringComparison.Ordinal), userInUrl.ToString());

        // 1: not found, refused with the API's problem details as sentences, unreachable.
        var unknown = await cli.RunAsync(viewer, "file", Guid.NewGuid().ToString());
        Assert.True(unknown.ExitCode == 1 && unknown.Errors.Contains("No file with id", StringComparison.Ordinal), unknown.ToString());
        var unnamed = await cli.RunAsync(viewer, "file", "raw/no/such/file.raw");
        Assert.True(unnamed.ExitCode == 1 && unnamed.Errors.Contains("No file is named raw/no/such/file.raw", StringComparison.Ordinal), unnamed.ToString());
        var definition = Path.Combine(cli.Folder, "bad-campaign.json");
        await File.WriteAllTextAsync(definition, """{"name": "bad name", "kind": "sideways"}""");
        var invalid = await cli.RunAsync(As(pipeline, PipelineUnderTest.OperatorKey), "campaign", "create", "-f", definition);
        Assert.True(invalid.ExitCode == 1, invalid.ToString());
        Assert.All(new[] { "nothing was created", "name:", "kind:", "release:", "datasets:" }, part => Assert.Contains(part, invalid.Errors, StringComparison.Ordinal));
        Assert.Equal(1, (await cli.RunAsync(new Dictionary<string, string> { ["PIPELINE_URL"] = "http://127.0.0.1:1/" }, "runs")).ExitCode);

        // The URL and a key file from a config file; the keys file the API generates is read as a key file too.
        var keyFile = Path.Combine(cli.Folder, "operator.key");
        await File.WriteAllTextAsync(keyFile, PipelineUnderTest.OperatorKey + "\n");
        var config = Path.Combine(cli.Folder, "config.json");
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(new { url = pipeline.Http.BaseAddress!.ToString(), apiKeyFile = keyFile }));
        var fromConfig = await cli.RunAsync(new Dictionary<string, string> { ["PIPELINE_CONFIG"] = config }, "pause", "stage", "merger", "--json");
        Assert.True(fromConfig.ExitCode == 0, fromConfig.ToString());
        Assert.True(JsonDocument.Parse(fromConfig.Output).RootElement.GetProperty("paused").GetBoolean());

        // A watch runs until stopped, a JSON line per refresh, and ends with 0. The test stops it with SIGTERM, which
        // ends it as Ctrl+C does: a SIGINT would be lost when the tests run from a background job, which ignores it.
        using var watch = cli.Start(viewer, "watch", "--json", "--interval", "0.2");
        for (var line = 0; line < 2; line++)
        {
            var text = await watch.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException($"the watch ended early: {await watch.StandardError.ReadToEndAsync()}");
            Assert.True(JsonDocument.Parse(text).RootElement.TryGetProperty("summary", out _));
        }
        // Read on to the end, so that a full pipe never holds the watch in a write.
        var rest = watch.StandardOutput.ReadToEndAsync();
        using (var terminate = Process.Start("kill", ["-TERM", watch.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await terminate.WaitForExitAsync();
        }
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await watch.WaitForExitAsync(limit.Token);
        await rest;
        Assert.Equal(0, watch.ExitCode);
    }
}
