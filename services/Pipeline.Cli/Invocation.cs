using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Pipeline.Cli;

/// <summary>What every command works with: the API, and where and how to print.</summary>
public sealed class Invocation(AdminApi api, bool json, IAnsiConsole output, IAnsiConsole errors)
{
    public AdminApi Api { get; } = api;

    /// <summary>Print the API's JSON, as it answered, instead of tables: for scripts.</summary>
    public bool Json { get; } = json;

    public IAnsiConsole Out { get; } = output;

    /// <summary>Progress and warnings go here, so that what a script reads on stdout stays clean.</summary>
    public IAnsiConsole Errors { get; } = errors;

    /// <summary>A person is at a terminal who can answer a question.</summary>
    public static bool CanAsk => !Console.IsInputRedirected && !Console.IsOutputRedirected;

    // Written as a person reads it ("+00:00", not "\u002B00:00"): the output goes to a terminal or a script, never into HTML.
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    private static readonly JsonSerializerOptions OneLine = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public void WriteJson(JsonElement value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, Indented));

    public void WriteJsonLine(JsonElement value) => Console.Out.WriteLine(JsonSerializer.Serialize(value, OneLine));

    /// <summary>The API's answer as JSON, or the sentence that says what it means.</summary>
    public void Say(JsonElement answer, string sentence)
    {
        if (Json)
        {
            WriteJson(answer);
        }
        else
        {
            Out.WriteLine(sentence);
        }
    }

    /// <summary>The API's answer as JSON, or drawn (a table, mostly).</summary>
    public void Present(JsonElement answer, Func<JsonElement, IRenderable> draw)
    {
        if (Json)
        {
            WriteJson(answer);
        }
        else
        {
            Out.Write(draw(answer));
        }
    }

    /// <summary>
    /// Asks before a change that touches many files, unless --yes was given. Under --json or with no terminal to ask,
    /// it refuses (exit 2) with what to add; a "no" ends the command with <paramref name="declined"/> and exit 1.
    /// </summary>
    public async Task ConfirmAsync(bool yes, string question, string howToSkip, string declined, CancellationToken ct)
    {
        if (yes)
        {
            return;
        }
        if (Json || !CanAsk)
        {
            throw new UsageException($"{howToSkip} (there is no terminal to ask).");
        }
        if (!await Out.ConfirmAsync(Markup.Escape(question), defaultValue: false, ct))
        {
            throw new CommandFailedException(declined);
        }
    }

    /// <summary>
    /// Runs a check that may take minutes (an audit, a reconciliation) under a live bar on stderr that shows how far the
    /// API has got (its step, and done of total), from the progress the API streams.
    /// </summary>
    public async Task<JsonElement> WithProgressAsync(string description, HttpMethod method, string path, CancellationToken ct)
    {
        var result = default(JsonElement);
        await WithProgressAsync(description, maxValue: 1, async report =>
            result = await Api.StreamAsync(method, path,
                (step, done, total) => report(total > 0 ? (double)done / total : 0, $"{description}: {step} {done}/{total}"), ct));
        return result;
    }

    /// <summary>
    /// Runs work under a live bar on stderr (not under --json, nor when stderr is not a terminal); the work reports
    /// how far it has got, as (value of <paramref name="maxValue"/>, description).
    /// </summary>
    public async Task WithProgressAsync(string description, double maxValue, Func<Action<double, string>, Task> work)
    {
        if (Json || !Errors.Profile.Capabilities.Interactive)
        {
            await work((_, _) => { });
            return;
        }
        await Errors.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
            .StartAsync(async progress =>
            {
                var task = progress.AddTask(Markup.Escape(description), maxValue: maxValue);
                await work((value, now) =>
                {
                    task.Value = value;
                    task.Description = Markup.Escape(now);
                });
                task.Value = task.MaxValue;
                task.StopTask();
            });
    }

    public static IAnsiConsole ConsoleFor(TextWriter writer, bool redirected)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(writer) });
        if (redirected)
        {
            // Piped into a file or a pager: no terminal width to fit, so tables are not wrapped at 80 columns.
            console.Profile.Width = 240;
        }
        return console;
    }
}

/// <summary>How values read in tables.</summary>
public static class Show
{
    public static IRenderable Cell(object? value) => new Text(value switch
    {
        null => "",
        JsonElement { ValueKind: JsonValueKind.Null or JsonValueKind.Undefined } => "",
        JsonElement { ValueKind: JsonValueKind.String } e => e.GetString() ?? "",
        JsonElement e => e.GetRawText(),
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    });

    public static Table Table(string? title, params string[] columns)
    {
        var table = new Table().Border(TableBorder.Rounded);
        if (title is not null)
        {
            table.Title(Markup.Escape(title));
        }
        foreach (var column in columns)
        {
            table.AddColumn(Markup.Escape(column));
        }
        return table;
    }

    public static Table Row(this Table table, params object?[] cells) => table.AddRow([.. cells.Select(Cell)]);

    public static string Bytes(long bytes)
    {
        string[] units = ["B", "kB", "MB", "GB", "TB", "PB"];
        double value = bytes;
        var unit = 0;
        while (value >= 1000 && unit < units.Length - 1)
        {
            value /= 1000;
            unit++;
        }
        return unit == 0 ? $"{bytes} B" : string.Create(CultureInfo.InvariantCulture, $"{value:0.0} {units[unit]}");
    }

    public static string Time(JsonElement value) =>
        value.ValueKind == JsonValueKind.String && DateTimeOffset.TryParse(value.GetString(), CultureInfo.InvariantCulture, DateTimeStyles.None, out var at)
            ? at.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)
            : "";

    public static string Text(this JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind != JsonValueKind.Null
            ? (value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : value.GetRawText())
            : "";

    public static long Number(this JsonElement element, string property) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetInt64() : 0;

    public static IEnumerable<JsonElement> Items(this JsonElement element, string? property = null) =>
        (property is null ? element : element.ValueKind == JsonValueKind.Object && element.TryGetProperty(property, out var list) ? list : default) is { ValueKind: JsonValueKind.Array } array
            ? array.EnumerateArray()
            : [];
}
