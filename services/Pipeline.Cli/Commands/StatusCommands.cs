using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Pipeline.Cli.Commands;

/// <summary>`status`, `watch` and `stages`: how production stands.</summary>
public static class StatusCommands
{
    /// <summary>The states in the order a file passes them; any state the API adds later follows, by name.</summary>
    private static readonly string[] StateOrder =
        ["Registered", "AwaitingCalibration", "Staging", "Staged", "Queued", "Reconstructing", "Reconstructed", "Merged", "Archived", "Failed", "Cancelled"];

    public static IEnumerable<Command> Build()
    {
        var status = new Command("status", "Files per campaign and state, throughput and slots per stage, active alerts, the largest failure groups");
        status.Runs(async (run, _, ct) =>
        {
            run.Present(await SnapshotAsync(run.Api, ct), Render);
            return ExitCodes.Ok;
        });

        var interval = new Option<double>("--interval") { Description = "Seconds between refreshes", DefaultValueFactory = _ => 5 };
        interval.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is < 0.2 or > 3600 or double.NaN)
            {
                r.AddError("--interval must be between 0.2 and 3600 seconds.");
            }
        });
        var watch = new Command("watch", "The status, refreshed until Ctrl+C (with --json: one JSON line per refresh)") { interval };
        watch.Runs(async (run, parsed, ct) =>
        {
            var every = TimeSpan.FromSeconds(parsed.GetValue(interval));
            async Task RefreshAsync(Action<JsonElement> show)
            {
                while (true)
                {
                    show(await SnapshotAsync(run.Api, ct));
                    await Task.Delay(every, ct);
                }
            }
            try
            {
                if (run.Json)
                {
                    await RefreshAsync(run.WriteJsonLine);
                }
                else if (run.Out.Profile.Capabilities.Interactive)
                {
                    // Redrawn in place on a terminal; one status after another into a pipe or a file.
                    await run.Out.Live(new Text("Asking the API…")).StartAsync(live => RefreshAsync(snapshot =>
                        live.UpdateTarget(new Rows(Render(snapshot), new Text($"{DateTimeOffset.Now:HH:mm:ss} · every {every.TotalSeconds:0.#} s · Ctrl+C to stop")))));
                }
                else
                {
                    await RefreshAsync(snapshot =>
                    {
                        run.Out.Write(Render(snapshot));
                        run.Out.WriteLine();
                    });
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                // Ctrl+C is how a watch ends: not a failure.
            }
            return ExitCodes.Ok;
        });

        var stages = new Command("stages", "The worker stages, and which are paused since when and by whom");
        stages.Runs(async (run, _, ct) =>
        {
            run.Present(await run.Api.GetAsync("/api/stages", ct), list =>
            {
                var table = Show.Table(null, "Stage", "Paused", "By", "Since");
                foreach (var stage in list.Items())
                {
                    table.Row(stage.Text("stage"), stage.GetProperty("paused").GetBoolean() ? "paused" : "running", stage.Text("by"), Show.Time(stage.GetProperty("since")));
                }
                return table;
            });
            return ExitCodes.Ok;
        });
        return [status, watch, stages];
    }

    /// <summary>The summary and the active alerts, as one JSON object: what `status --json` prints.</summary>
    private static async Task<JsonElement> SnapshotAsync(AdminApi api, CancellationToken ct)
    {
        var summary = await api.GetAsync("/api/summary", ct);
        var alerts = await api.GetAsync("/api/alerts", ct);
        return JsonSerializer.SerializeToElement(new JsonObject
        {
            ["summary"] = JsonNode.Parse(summary.GetRawText()),
            ["alerts"] = JsonNode.Parse(alerts.GetRawText()),
        });
    }

    private static IRenderable Render(JsonElement snapshot)
    {
        var summary = snapshot.GetProperty("summary");
        var parts = new List<IRenderable>
        {
            new Text($"{summary.Number("runs")} runs · {summary.Number("mergedFiles")} merged files archived, {Show.Bytes(summary.Number("mergedBytes"))}, {summary.Number("mergedEvents")} events\n"),
        };

        // Files per campaign and state: a row per campaign, a column per state that has files, and the totals.
        var counts = summary.Items("states").Select(s => (Campaign: s.Text("campaign"), State: s.Text("state"), Files: s.Number("files"))).ToList();
        var states = counts.Select(c => c.State).Distinct()
            .OrderBy(s => Array.IndexOf(StateOrder, s) is var i and >= 0 ? i : StateOrder.Length).ThenBy(s => s, StringComparer.Ordinal).ToList();
        var files = Show.Table("Files", ["Campaign", .. states, "Total"]);
        foreach (var campaign in counts.GroupBy(c => c.Campaign).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            files.Row([campaign.Key, .. states.Select(s => (object)campaign.Where(c => c.State == s).Sum(c => c.Files)), campaign.Sum(c => c.Files)]);
        }
        if (states.Count > 0)
        {
            files.Row(["all", .. states.Select(s => (object)counts.Where(c => c.State == s).Sum(c => c.Files)), counts.Sum(c => c.Files)]);
        }
        else
        {
            files.Row("no files yet");
        }
        parts.Add(files);

        var busy = summary.Items("utilisation").ToDictionary(u => u.Text("stage"), u => $"{u.Number("busy")}/{u.Number("capacity")} on {u.Number("instances")}");
        var stages = Show.Table("Throughput per stage", "Stage", "Files this hour", "Bytes this hour", "Files 24 h", "Bytes 24 h", "Slots busy");
        var stageNames = summary.Items("stages").Select(s => s.Text("stage")).Union(busy.Keys).Order(StringComparer.Ordinal);
        foreach (var name in stageNames)
        {
            var stage = summary.Items("stages").FirstOrDefault(s => s.Text("stage") == name);
            stages.Row(name, stage.Number("filesThisHour"), Show.Bytes(stage.Number("bytesThisHour")),
                stage.Number("filesLast24Hours"), Show.Bytes(stage.Number("bytesLast24Hours")),
                busy.GetValueOrDefault(name, ""));
        }
        parts.Add(stages);

        var alerts = snapshot.Items("alerts").ToList();
        if (alerts.Count == 0)
        {
            parts.Add(new Text("No active alerts.\n"));
        }
        else
        {
            var table = Show.Table($"Active alerts ({alerts.Count})", "Severity", "Kind", "Since", "Message");
            foreach (var alert in alerts)
            {
                table.Row(alert.Text("severity"), alert.Text("kind"), Show.Time(alert.GetProperty("raisedAt")), alert.Text("message"));
            }
            parts.Add(table);
        }

        var failures = summary.Items("failures").ToList();
        if (failures.Count > 0)
        {
            var table = Show.Table($"Failures ({failures.Sum(f => f.Number("files"))} files in {failures.Count} groups; `pipeline retry --signature ID`)",
                "Id", "Campaign", "Stage", "Files", "Signature");
            foreach (var failure in failures.Take(5))
            {
                table.Row(failure.Text("id"), failure.Text("campaign"), failure.Text("stage"), failure.Number("files"), failure.Text("signature"));
            }
            parts.Add(table);
        }
        return new Rows(parts);
    }
}
