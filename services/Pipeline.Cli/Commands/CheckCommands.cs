using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Pipeline.Cli.Commands;

/// <summary>`audit` and `reconcile`: the checks that prove production complete and storage as catalogued. Exit 1 when they find something.</summary>
public static class CheckCommands
{
    public static IEnumerable<Command> Build() => [Audit(), Reconcile()];

    private static Command Audit()
    {
        var campaign = new Argument<string>("campaign") { Description = "The campaign to audit" };
        var events = new Option<bool>("--events") { Description = "Read every raw file and archived copy too, and compare event by event (a full read of the campaign's data)" };
        var command = new Command("audit", "Prove from the catalog that every raw file of a campaign is in each of its datasets exactly once; exit 1 when not complete") { campaign, events };
        command.Runs(async (run, parsed, ct) =>
        {
            var name = parsed.GetValue(campaign)!;
            var readEvents = parsed.GetValue(events);
            var report = await run.WithProgressAsync($"Auditing campaign {name}", HttpMethod.Get,
                $"/api/campaigns/{Uri.EscapeDataString(name)}/audit{(readEvents ? "?events=true" : "")}", ct);
            var complete = report.GetProperty("complete").GetBoolean();
            if (run.Json)
            {
                run.WriteJson(report);
                return complete ? ExitCodes.Ok : ExitCodes.Failed;
            }
            run.Out.WriteLine($"Campaign {name}: {report.Number("rawFiles")} raw files, {report.Number("archivedRawFiles")} archived, {report.Number("failedRawFiles")} failed, "
                + $"{report.Number("cancelledRawFiles")} cancelled, {report.Number("unfinishedRawFiles")} unfinished; "
                + $"{report.Number("manifestsVerified")} of {report.Number("mergedFiles")} merged files' manifests verified.");
            var datasets = Show.Table("Datasets", "Dataset", "Raw files", "Events", "Missing", "Doubled", "Unexpected");
            foreach (var dataset in report.GetProperty("datasets").EnumerateObject())
            {
                var d = dataset.Value;
                datasets.Row(dataset.Name, d.Number("rawFiles"), d.Number("events"), d.Number("missing"), d.Number("doubled"), d.Number("unexpected"));
            }
            run.Out.Write(datasets);
            if (report.TryGetProperty("events", out var read) && read.ValueKind == System.Text.Json.JsonValueKind.Object)
            {
                run.Out.WriteLine($"Events read: {read.Number("eventsIn")} in the raw files, {read.Number("eventsExpected")} expected in the datasets, "
                    + $"{read.Number("eventsArchived")} archived; {read.Number("eventsLost")} lost, {read.Number("eventsDuplicated")} doubled, {read.Number("eventsUnexpected")} unexpected; "
                    + $"{read.Number("checksumsVerified")} archived copies verified, {read.Number("checksumsBad")} wrong.");
            }
            foreach (var problem in report.Items("manifestProblems"))
            {
                run.Out.WriteLine($"manifest: {problem.GetString()}");
            }
            foreach (var kind in new[] { "missing", "doubled", "unexpected" })
            {
                var findings = report.Items(kind).ToList();
                foreach (var finding in findings.Take(20))
                {
                    run.Out.WriteLine($"{kind}: {finding.Text("dataset")} {finding.Text("rawName")} output {finding.Text("outputId")}"
                        + (finding.Items("mergedFiles").Any() ? $" in {string.Join(", ", finding.Items("mergedFiles").Select(m => m.GetString()))}" : ""));
                }
                if (findings.Count > 20)
                {
                    run.Out.WriteLine($"{kind}: and {findings.Count - 20} more (--json lists them all)");
                }
            }
            run.Out.WriteLine(complete ? "Complete." : "Not complete.");
            return complete ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }

    private static Command Reconcile()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "Report only: mark, restore and move nothing" };
        var verify = new Option<bool>("--verify") { Description = "Re-read every byte and compare checksums (slow)" };
        var darkAfter = new Option<double?>("--dark-after-minutes") { Description = "A file the catalog lacks counts as dark once this old (default 60)" };
        var command = new Command("reconcile", "Sweep the catalog against the archive areas now; exit 1 when anything was found") { dryRun, verify, darkAfter };
        command.Runs(async (run, parsed, ct) =>
        {
            var query = new List<(string, object)> { ("dryRun", parsed.GetValue(dryRun) ? "true" : "false"), ("verify", parsed.GetValue(verify) ? "true" : "false") };
            if (parsed.GetValue(darkAfter) is { } minutes)
            {
                query.Add(("darkAfterMinutes", minutes.ToString(CultureInfo.InvariantCulture)));
            }
            var report = await run.WithProgressAsync(parsed.GetValue(verify) ? "Reconciling, every byte re-read" : "Reconciling",
                HttpMethod.Post, AdminApi.WithQuery("/api/reconciliation", query), ct);
            var clean = report.GetProperty("clean").GetBoolean();
            if (run.Json)
            {
                run.WriteJson(report);
                return clean ? ExitCodes.Ok : ExitCodes.Failed;
            }
            run.Out.WriteLine($"{report.Number("copiesChecked")} catalogued copies checked{(report.GetProperty("checksumsVerified").GetBoolean() ? ", checksums re-read" : "")}"
                + (report.GetProperty("dryRun").GetBoolean() ? " (dry run: nothing changed)" : "") + ".");
            var copies = Show.Table("Copies", "Found", "Area", "Name", "Kind", "Problem", "Outcome");
            foreach (var kind in new[] { "bad", "restored" })
            {
                foreach (var copy in report.Items(kind))
                {
                    copies.Row(kind, copy.Text("area"), copy.Text("name"), copy.Text("kind"), copy.Text("problem"), copy.Text("outcome"));
                }
            }
            foreach (var dark in report.Items("dark"))
            {
                copies.Row("dark", dark.Text("area"), dark.Text("name"), Show.Bytes(dark.Number("size")), "not in the catalog", dark.Text("quarantinedAs") is { Length: > 0 } q ? $"moved to {q}" : "left in place");
            }
            if (copies.Rows.Count > 0)
            {
                run.Out.Write(copies);
            }
            foreach (var area in report.Items("areasNotListed"))
            {
                run.Out.WriteLine($"Area {area.GetString()} could not be listed.");
            }
            run.Out.WriteLine(clean ? "Clean." : "Not clean.");
            return clean ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }
}
