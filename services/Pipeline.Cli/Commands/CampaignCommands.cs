using System.CommandLine;
using System.Text.Json;
using Spectre.Console;

namespace Pipeline.Cli.Commands;

/// <summary>`campaigns`, `campaign …`, and `pause`, `resume`, `drain` of stages and campaigns.</summary>
public static class CampaignCommands
{
    public static IEnumerable<Command> Build() =>
    [
        Campaigns(),
        Campaign(),
        Control("pause", "Pause a stage everywhere (its messages wait in the broker) or a campaign (no new stage-in or reconstruction for its files)",
            answer => $"{Name(answer)} is paused (by {answer.Text("by")}, since {Show.Time(answer.GetProperty("since"))})."),
        Control("resume", "Resume a paused stage or campaign", answer => $"{Name(answer)} is running."),
        Drain(),
    ];

    private static Command Campaigns()
    {
        var command = new Command("campaigns", "Every campaign: status, pause, priority, release, progress and forecast");
        command.Runs(async (run, _, ct) =>
        {
            run.Present(await run.Api.GetAsync("/api/campaigns", ct), CampaignTable);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Table CampaignTable(JsonElement campaigns)
    {
        var table = Show.Table(null, "Campaign", "Kind", "Status", "Paused", "Priority", "Release", "Done", "Failed", "Remaining", "Bottleneck", "Estimated end", "Stale");
        foreach (var campaign in campaigns.Items())
        {
            var forecast = campaign.GetProperty("forecast");
            table.Row(campaign.Text("campaign"), campaign.Text("kind"), campaign.Text("status"), campaign.GetProperty("paused").GetBoolean() ? $"by {campaign.Text("by")}" : "",
                campaign.Number("priority"), campaign.Text("release"), $"{forecast.Number("done")}/{forecast.Number("files")}", forecast.Number("failed"),
                forecast.Number("remaining"), forecast.Text("bottleneck"), Show.Time(forecast.GetProperty("estimatedCompletion")), campaign.Text("stale"));
        }
        return table;
    }

    private static Argument<string> CampaignName() => new("name") { Description = "The campaign's name" };

    /// <summary>The campaign's address in the API, its name escaped.</summary>
    private static string CampaignPath(ParseResult parsed, Argument<string> name) => $"/api/campaigns/{Uri.EscapeDataString(parsed.GetValue(name)!)}";

    private static Command Campaign()
    {
        var showName = CampaignName();
        var show = new Command("show", "One campaign with its definition and forecast (as JSON)") { showName };
        show.Runs(async (run, parsed, ct) =>
        {
            run.WriteJson(await run.Api.GetAsync(CampaignPath(parsed, showName), ct));
            return ExitCodes.Ok;
        });

        var file = new Option<FileInfo>("--file", "-f") { Description = "The campaign definition, a JSON file (see docs/operations.md)", Required = true };
        var create = new Command("create", "Create a campaign from a definition file; every problem in it is listed") { file };
        create.Runs(async (run, parsed, ct) =>
        {
            var path = parsed.GetValue(file)!;
            if (!path.Exists)
            {
                throw new UsageException($"No campaign definition at {path.FullName}.");
            }
            string definition;
            try
            {
                using var document = JsonDocument.Parse(await System.IO.File.ReadAllTextAsync(path.FullName, ct));
                definition = document.RootElement.GetRawText();
            }
            catch (JsonException ex)
            {
                throw new CommandFailedException($"{path.Name} is not valid JSON: {ex.Message}");
            }
            var campaign = await run.Api.SendAsync(HttpMethod.Post, "/api/campaigns", definition, ct);
            run.Say(campaign, $"Campaign {campaign.Text("campaign")} ({campaign.Text("kind")}, release {campaign.Text("release")}, version {campaign.Number("version")}) is defined; "
                + "the same definition again changes nothing.");
            return ExitCodes.Ok;
        });

        var priority = new Argument<int>("priority") { Description = "Its share of reconstruction slots against the other busy campaigns (1-1000)" };
        var priorityName = CampaignName();
        var setPriority = new Command("priority", "Set a campaign's share of the reconstruction slots") { priorityName, priority };
        setPriority.Runs(async (run, parsed, ct) =>
        {
            var answer = await run.Api.SendAsync(HttpMethod.Put, CampaignPath(parsed, priorityName) + "/priority",
                JsonSerializer.Serialize(new { priority = parsed.GetValue(priority) }), ct);
            run.Say(answer, $"Campaign {answer.Text("campaign")} now has priority {answer.Number("priority")}.");
            return ExitCodes.Ok;
        });

        var yes = new Option<bool>("--yes", "-y") { Description = "Cancel without asking" };
        var cancelName = CampaignName();
        var cancel = new Command("cancel", "Cancel a campaign: files not yet reconstructing end as cancelled, the rest finish") { cancelName, yes };
        cancel.Runs(async (run, parsed, ct) =>
        {
            var name = parsed.GetValue(cancelName)!;
            var campaign = await run.Api.GetAsync(CampaignPath(parsed, cancelName), ct);
            var remaining = campaign.GetProperty("forecast").Number("remaining");
            await run.ConfirmAsync(parsed.GetValue(yes), $"Cancel campaign {name}, with {remaining} files not yet final?",
                $"Campaign {name} has {remaining} files not yet final; add --yes to cancel it", "Nothing cancelled.", ct);
            var answer = await run.Api.PostAsync(CampaignPath(parsed, cancelName) + "/cancel", null, ct);
            run.Say(answer, $"Campaign {name} cancelled: {answer.Number("filesCancelled")} files cancelled, those reconstructing finish.");
            return ExitCodes.Ok;
        });
        return new Command("campaign", "One campaign: show, create, priority, cancel") { show, create, setPriority, cancel };
    }

    /// <summary>`pause` or `resume` of a stage or a campaign: the same two arguments, and the API's route for each.</summary>
    private static Command Control(string action, string description, Func<JsonElement, string> sentence)
    {
        var kind = new Argument<string>("kind")
        {
            Description = "stage or campaign",
            Validators = { r => { if (r.GetValueOrDefault<string>() is not ("stage" or "campaign")) { r.AddError("Say `stage` or `campaign`."); } } },
        };
        var name = new Argument<string>("name") { Description = "The stage (`pipeline stages`) or the campaign" };
        var command = new Command(action, description) { kind, name };
        command.Runs(async (run, parsed, ct) =>
        {
            var target = Uri.EscapeDataString(parsed.GetValue(name)!);
            var path = parsed.GetValue(kind) == "stage" ? $"/api/stages/{target}/{action}" : $"/api/campaigns/{target}/{action}";
            var answer = await run.Api.PostAsync(path, null, ct);
            run.Say(answer, sentence(answer));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Drain()
    {
        var stage = new Argument<string>("stage") { Description = "The stage to drain (`pipeline stages`)" };
        var wait = new Option<bool>("--wait") { Description = "Wait, with a bar, until no slot of the stage is busy" };
        var command = new Command("drain", "Drain a stage: work in flight finishes, nothing new is taken (resume it to take work again)") { stage, wait };
        command.Runs(async (run, parsed, ct) =>
        {
            var name = parsed.GetValue(stage)!;
            var answer = await run.Api.PostAsync($"/api/stages/{Uri.EscapeDataString(name)}/drain", null, ct);
            if (!parsed.GetValue(wait))
            {
                run.Say(answer, $"Stage {name} is draining: nothing new is taken. `pipeline drain stage {name} --wait` waits for its busy slots to reach 0.");
                return ExitCodes.Ok;
            }
            async Task<long> BusyAsync() => (await run.Api.GetAsync("/api/summary", ct)).Items("utilisation").Where(u => u.Text("stage") == name).Sum(u => u.Number("busy"));
            var busy = await BusyAsync();
            var atStart = Math.Max(busy, 1);
            await run.WithProgressAsync($"Draining {name}: {busy} slots busy", atStart, async report =>
            {
                while (busy > 0)
                {
                    report(atStart - busy, $"Draining {name}: {busy} slots busy");
                    await Task.Delay(TimeSpan.FromSeconds(1), ct);
                    busy = await BusyAsync();
                }
            });
            run.Say(answer, $"Stage {name} is drained: no slot busy, nothing new taken until `pipeline resume stage {name}`.");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Name(JsonElement answer) =>
        answer.Text("stage") is { Length: > 0 } stage ? $"Stage {stage}" : $"Campaign {answer.Text("campaign")}";

}
