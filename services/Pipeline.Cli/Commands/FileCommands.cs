using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace Pipeline.Cli.Commands;

/// <summary>`runs`, `run`, `files`, `file`, `logs` and `retry`: finding files and sending failed ones round again.</summary>
public static class FileCommands
{
    public static IEnumerable<Command> Build() => [Runs(), RunView(), Files(), File(), Logs(), Retry()];

    private static Command Runs()
    {
        var command = new Command("runs", "Registered runs, with their raw files");
        command.Runs(async (run, _, ct) =>
        {
            run.Present(await run.Api.GetAsync("/api/runs", ct), runs =>
            {
                var table = Show.Table(null, "Run", "Files", "Registered");
                foreach (var entry in runs.Items())
                {
                    table.Row(entry.Number("run"), entry.Number("files"), Show.Time(entry.GetProperty("registeredAt")));
                }
                return table;
            });
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command RunView()
    {
        var number = new Argument<int>("run") { Description = "The run's number" };
        var command = new Command("run", "One run: per campaign, its files, events and bytes in each state, and its failures by reason") { number };
        command.Runs(async (run, parsed, ct) =>
        {
            var view = await run.Api.GetAsync($"/api/runs/{parsed.GetValue(number)}", ct);
            run.Present(view, _ =>
            {
                var states = Show.Table($"Run {view.Number("run")}: {view.Number("announcedFiles")} raw files announced", "Campaign", "State", "Files", "Events", "Bytes");
                var failures = Show.Table("Failures", "Campaign", "Files", "Reason");
                foreach (var campaign in view.Items("campaigns"))
                {
                    foreach (var state in campaign.Items("states"))
                    {
                        states.Row(campaign.Text("campaign"), state.Text("state"), state.Number("files"), state.Number("events"), Show.Bytes(state.Number("bytes")));
                    }
                    foreach (var failure in campaign.Items("failures"))
                    {
                        failures.Row(campaign.Text("campaign"), failure.Number("files"), failure.Text("reason"));
                    }
                }
                return failures.Rows.Count == 0 ? states : new Rows(states, failures);
            });
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>The filters the API's file list and bulk retry share.</summary>
    private sealed class FileFilter
    {
        public Option<string?> Campaign { get; } = new("--campaign") { Description = "Files of this campaign" };
        public Option<int?> RunFrom { get; } = new("--run-from") { Description = "From this run on" };
        public Option<int?> RunTo { get; } = new("--run-to") { Description = "Up to this run" };
        public Option<string?> Stream { get; } = new("--stream") { Description = "Files of this stream" };
        public Option<string?> Signature { get; } = new("--signature") { Description = "Failed the same way: a failure group's id (`pipeline status`, /api/failures)" };

        public IEnumerable<Option> All => [Campaign, RunFrom, RunTo, Stream, Signature];

        /// <summary>The filters given, named as the API names them.</summary>
        public IReadOnlyList<(string Name, object Value)> Values(ParseResult parsed) =>
            [.. new (string Name, object? Value)[]
            {
                ("campaign", parsed.GetValue(Campaign)), ("runFrom", parsed.GetValue(RunFrom)), ("runTo", parsed.GetValue(RunTo)),
                ("stream", parsed.GetValue(Stream)), ("signature", parsed.GetValue(Signature)),
            }.Where(v => v.Value is not null).Select(v => (v.Name, v.Value!))];
    }

    private static Command Files()
    {
        var filter = new FileFilter();
        var state = new Option<string?>("--state") { Description = "Files in this state (Failed, Archived, Reconstructing, …)" };
        var dataset = new Option<string?>("--dataset") { Description = "Files with an output in this dataset" };
        var limit = new Option<int>("--limit") { Description = "Files per page (1-1000)", DefaultValueFactory = _ => 100 };
        var after = new Option<string?>("--after") { Description = "The page after this cursor (printed under a full page)" };
        var all = new Option<bool>("--all") { Description = "Every matching file, page after page" };
        var command = new Command("files", "Files in (run, name) order, filtered as the API's /api/files is") { state, dataset, limit, after, all };
        foreach (var option in filter.All)
        {
            command.Add(option);
        }
        command.Runs(async (run, parsed, ct) =>
        {
            var query = filter.Values(parsed).ToList();
            if (parsed.GetValue(state) is { } s)
            {
                query.Add(("state", s));
            }
            if (parsed.GetValue(dataset) is { } d)
            {
                query.Add(("dataset", d));
            }
            query.Add(("limit", parsed.GetValue(limit)));
            var cursor = parsed.GetValue(after);
            var files = new List<JsonElement>();
            string? next;
            do
            {
                var page = await run.Api.GetAsync(AdminApi.WithQuery("/api/files", cursor is null ? query : [.. query, ("after", cursor)]), ct);
                files.AddRange(page.Items("files"));
                next = page.Text("next") is { Length: > 0 } n ? n : null;
                cursor = next;
            }
            while (parsed.GetValue(all) && next is not null);

            if (run.Json)
            {
                run.WriteJson(JsonSerializer.SerializeToElement(new { files, next }));
                return ExitCodes.Ok;
            }
            var table = Show.Table(null, "Id", "Campaign", "Run", "Stream", "Name", "State", "Attempt", "Updated", "Failure");
            foreach (var file in files)
            {
                table.Row(file.Text("id"), file.Text("campaign"), file.Number("run"), file.Text("stream"), file.Text("logicalName"),
                    file.Text("state"), file.Number("attempt"), Show.Time(file.GetProperty("updatedAt")), file.Text("failureReason"));
            }
            run.Out.Write(table);
            run.Out.WriteLine($"{files.Count} files" + (next is null ? "." : $"; more with --after {next} (or --all)."));
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command File()
    {
        var id = new Argument<string>("file") { Description = "The file's id (as `pipeline files` lists it), its trace id, or its logical name" };
        var command = new Command("file", "One file: its state, history, attempts, outputs, catalog entries, logs and trace id") { id };
        command.Runs(async (run, parsed, ct) =>
        {
            var file = await run.Api.GetAsync($"/api/files/{await FileIdAsync(run, parsed.GetValue(id)!, ct)}", ct);
            if (run.Json)
            {
                run.WriteJson(file);
                return ExitCodes.Ok;
            }
            var facts = new Grid().AddColumn().AddColumn();
            foreach (var (label, value) in new[]
            {
                ("Id", file.Text("correlationId")), ("Name", file.Text("logicalName")), ("Campaign", file.Text("campaign")),
                ("Run / stream", $"{file.Number("run")} / {file.Text("stream")}"), ("State", file.Text("currentState")),
                ("Attempt", $"{file.Number("attempt")} of {file.Number("maxAttempts") + file.Number("extraAttempts")}, {file.Number("failures")} failed"),
                ("Size / adler32", $"{Show.Bytes(file.Number("size"))} / {file.Text("adler32")}"), ("Events", file.Text("events")),
                ("Release", file.Text("release")), ("Batch job", file.Text("batchJob")), ("Worker", file.Text("worker")), ("Trace id", file.Text("traceId")),
                ("Failure", string.Join(" ", new[] { file.Text("failureStage"), file.Text("failureReason") }.Where(t => t.Length > 0))),
            })
            {
                if (value.Length > 0)
                {
                    facts.AddRow(new Text(label), new Text(value));
                }
            }
            run.Out.Write(facts);
            run.Out.WriteLine();

            var history = Show.Table("History", "At", "State", "Event", "Attempt", "Detail");
            foreach (var entry in file.Items("history"))
            {
                history.Row(Show.Time(entry.GetProperty("at")), entry.Text("state"), entry.Text("event"), entry.Number("attempt"), entry.Text("detail"));
            }
            run.Out.Write(history);

            var outputs = Show.Table("Outputs", "Dataset", "Name", "Events", "Merged into", "Archived");
            foreach (var output in file.Items("outputs"))
            {
                var made = output.GetProperty("output");
                outputs.Row(made.Text("dataset"), made.Text("name"), made.Text("events"), output.Text("mergedName"), output.Text("archived"));
            }
            run.Out.Write(outputs);

            var catalog = Show.Table("Catalog", "Area", "Name", "Size", "Adler32");
            foreach (var entry in file.Items("catalog"))
            {
                catalog.Row(entry.Text("area"), entry.Text("name"), entry.Number("size"), entry.Text("adler32"));
            }
            run.Out.Write(catalog);
            var logs = file.Items("logNames").Select(l => l.GetString()).ToList();
            run.Out.WriteLine(logs.Count == 0 ? "No logs collected." : $"Logs (`pipeline logs NAME`):\n  {string.Join("\n  ", logs)}");
            return ExitCodes.Ok;
        });
        return command;
    }

    /// <summary>A file's id from its id, its trace id (both parse as a Guid) or its logical name, found in every campaign.</summary>
    private static async Task<Guid> FileIdAsync(Invocation run, string given, CancellationToken ct)
    {
        if (Guid.TryParse(given, out var id))
        {
            return id;
        }
        var found = (await run.Api.GetAsync(AdminApi.WithQuery("/api/search", [("q", given)]), ct)).Items().ToList();
        return found.Count switch
        {
            0 => throw new CommandFailedException($"No file is named {given} in any campaign."),
            1 => Guid.Parse(found[0].Text("id")),
            _ => throw new CommandFailedException($"{found.Count} files are named {given}, one in each of the campaigns {string.Join(", ", found.Select(f => f.Text("campaign")))}: give the id of one ({string.Join(", ", found.Select(f => f.Text("id")))})."),
        };
    }

    private static Command Logs()
    {
        var target = new Argument<string>("file-or-log") { Description = "A file's id: list its collected logs; a log's name: print it" };
        var command = new Command("logs", "A file's collected job logs, or one log printed as it streams") { target };
        command.Runs(async (run, parsed, ct) =>
        {
            var name = parsed.GetValue(target)!;
            if (Guid.TryParse(name, out var id))
            {
                var file = await run.Api.GetAsync($"/api/files/{id}", ct);
                run.Present(file.GetProperty("logNames"), names => new Text(string.Concat(names.Items().Select(n => n.GetString() + "\n"))));
                return ExitCodes.Ok;
            }
            // Copied through as it arrives: a log can be large, and is never held whole.
            using var response = await run.Api.OpenAsync("/api/logs/" + string.Join('/', name.Split('/').Select(Uri.EscapeDataString)), ct);
            await using var body = await response.Content.ReadAsStreamAsync(ct);
            await using var stdout = Console.OpenStandardOutput();
            await body.CopyToAsync(stdout, ct);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Retry()
    {
        var filter = new FileFilter();
        var id = new Argument<string?>("id")
        {
            Description = "One failed file's id; or none, and filters choose the failed files",
            Arity = ArgumentArity.ZeroOrOne,
            Validators = { r => { if (r.GetValueOrDefault<string?>() is { } text && !Guid.TryParse(text, out _)) { r.AddError($"'{text}' is not a file id."); } } },
        };
        var extraAttempts = new Option<int>("--extra-attempts") { Description = "Attempts on top of the campaign's budget (0-100)" };
        var timeout = new Option<int?>("--timeout-seconds") { Description = "A longer reconstruction time limit for these files" };
        var yes = new Option<bool>("--yes", "-y") { Description = "Retry without asking (how many files match is still printed)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Say how many failed files match, and retry none" };
        var max = new Option<int>("--max") { Description = "Refuse when more files than this match: a filter wider than meant stops here", DefaultValueFactory = _ => 100 };
        var command = new Command("retry", "Start failed files again from stage-in: one by id, or every failed file that the filters match (after a preview)")
        {
            id, extraAttempts, timeout, yes, dryRun, max,
        };
        foreach (var option in filter.All)
        {
            command.Add(option);
        }
        command.Runs(async (run, parsed, ct) =>
        {
            var filters = filter.Values(parsed).ToList();
            var request = new JsonObject { ["extraAttempts"] = parsed.GetValue(extraAttempts), ["timeoutSeconds"] = parsed.GetValue(timeout) };
            if (parsed.GetValue(id) is { } one)
            {
                if (filters.Count > 0)
                {
                    throw new UsageException("Give a file's id or filters, not both.");
                }
                var accepted = await run.Api.PostAsync($"/api/files/{one}/retry", request, ct);
                run.Say(accepted, $"File {one} retried: it starts again from stage-in.");
                return ExitCodes.Ok;
            }
            if (filters.Count == 0)
            {
                throw new UsageException("Say which failed files to retry: an id, or at least one of --campaign, --signature, --run-from, --run-to, --stream.");
            }

            foreach (var (name, value) in filters)
            {
                request[name] = JsonSerializer.SerializeToNode(value);
            }
            var described = string.Join(", ", filters.Select(f => $"{f.Name} {f.Value}"));
            request["dryRun"] = true;
            var preview = await run.Api.PostAsync("/api/files/retry", request, ct);
            var matched = (int)preview.Number("matched");
            if (parsed.GetValue(dryRun) || matched == 0)
            {
                run.Say(preview, $"{matched} failed files match ({described}); none retried.");
                return ExitCodes.Ok;
            }
            if (matched > parsed.GetValue(max))
            {
                throw new CommandFailedException($"{matched} failed files match ({described}), more than --max {parsed.GetValue(max)}: narrow the filters, or raise --max to retry them all.");
            }
            await run.ConfirmAsync(parsed.GetValue(yes), $"Retry {matched} failed files ({described})?",
                $"{matched} failed files match ({described}); add --yes to retry them", "Nothing retried.", ct);
            // No more than were shown: a file that failed since the preview waits for the next retry.
            request["dryRun"] = false;
            request["limit"] = matched;
            var done = await run.Api.PostAsync("/api/files/retry", request, ct);
            run.Say(done, $"{done.Number("retried")} failed files retried ({described}): they start again from stage-in.");
            return ExitCodes.Ok;
        });
        return command;
    }
}
