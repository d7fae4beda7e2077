using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Infrastructure.Telemetry;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;

namespace Pipeline.Production.Ingest;

/// <summary>A run announcement that cannot be accepted, with every problem found, by field.</summary>
public sealed class InvalidRunException(IReadOnlyDictionary<string, string[]> errors)
    : Exception("Run event rejected: " + string.Join("; ", errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}"))))
{
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;
}

/// <summary>The run was announced before with different files.</summary>
public sealed class ConflictingRunException(int run)
    : Exception($"Run {run} was already registered with different files; a run's files cannot change once announced.")
{
    public int Run { get; } = run;
}

/// <summary>A run taken in: its files, and the prompt campaigns that took them (a file may be in several).</summary>
public sealed record IngestResult(int Run, IReadOnlyList<string> Campaigns, int Files, bool AlreadyRegistered, IReadOnlyList<Guid> FileIds);

/// <summary>
/// Turns a run announcement (from the data-acquisition system or the admin API) into one registered
/// file saga per raw file and active prompt campaign that selects it. Validates everything before changing anything.
/// </summary>
public sealed partial class RunIngestion(IRunRegistry runs, CampaignDirectory campaigns, TimeProvider time)
{
    public const int MaxFilesPerRun = 100_000;
    public const int MaxConditions = 64;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    private static partial Regex StreamName();

    public static IReadOnlyDictionary<string, string[]> Validate(RunRecorded? run)
    {
        var errors = new ValidationProblems();
        void Add(string field, string problem) => errors.Add(field, problem);

        if (run is null)
        {
            Add("body", "a run event is required");
            return errors.ToDictionary();
        }
        if (run.Run <= 0)
        {
            Add("run", "must be a positive run number");
        }
        if (run.Conditions is { } conditions)
        {
            if (conditions.Count > MaxConditions)
            {
                Add("conditions", $"at most {MaxConditions} conditions");
            }
            foreach (var (key, value) in conditions)
            {
                if (!StreamName().IsMatch(key) || value is null || value.Length > 256 || value.Any(char.IsControl))
                {
                    Add("conditions", $"'{key}': a name of 1-64 letters, digits, '_' or '-' with a value of at most 256 printable characters");
                }
            }
        }
        if (run.Files is null || run.Files.Count == 0)
        {
            Add("files", "at least one raw file is required");
            return errors.ToDictionary();
        }
        if (run.Files.Count > MaxFilesPerRun)
        {
            Add("files", $"at most {MaxFilesPerRun} files per run");
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < run.Files.Count; i++)
        {
            var file = run.Files[i];
            var at = $"files[{i}]";
            if (file is null)
            {
                Add(at, "is missing");
                continue;
            }
            var nameProblem = AreaNames.Problem(file.Name);
            if (nameProblem is not null)
            {
                Add($"{at}.name", nameProblem);
            }
            else if (!names.Add(file.Name!))
            {
                Add($"{at}.name", $"'{file.Name}' appears more than once in this run");
            }
            if (file.Stream is null || !StreamName().IsMatch(file.Stream))
            {
                Add($"{at}.stream", "must be 1-64 letters, digits, '_' or '-'");
            }
            if (file.Section < 0)
            {
                Add($"{at}.section", "must not be negative");
            }
            if (file.Size <= 0)
            {
                Add($"{at}.size", "must be a positive number of bytes");
            }
            if (!Adler32Checksum.IsWellFormed(file.Adler32))
            {
                Add($"{at}.adler32", "must be eight hexadecimal digits");
            }
            if (file.Events < 0)
            {
                Add($"{at}.events", "must not be negative");
            }
        }
        return errors.ToDictionary();
    }

    /// <summary>
    /// Registers the run and publishes one <see cref="FileRegistered"/> per file. A run announced again
    /// with the same files publishes them again (harmless: sagas ignore a second registration), so a
    /// crash between registering and publishing loses nothing.
    /// </summary>
    public async Task<IngestResult> IngestAsync(RunRecorded run, IPublishEndpoint publisher, CancellationToken cancellationToken)
    {
        var errors = Validate(run);
        if (errors.Count > 0)
        {
            throw new InvalidRunException(errors);
        }
        var files = run.Files!;
        // The run's registration is a trace of its own (or a step of the trace that announced it): each file's trace links to it.
        using var span = FileTracing.Source.StartActivity($"register run {run.Run}");
        span?.SetTag(FileTracing.RunTag, run.Run);
        var now = time.GetUtcNow();
        var rawEntries = files
            .Select(f => new CatalogEntry(f.Name!, StorageOptions.Archive, CatalogEntry.Raw, null, null, f.Size,
                f.Adler32!.ToLowerInvariant(), f.Events, [], now))
            .ToList();
        var registration = await runs.RegisterRunAsync(run.Run, Digest(run), rawEntries, run, cancellationToken);
        if (registration == RunRegistration.Conflicting)
        {
            throw new ConflictingRunException(run.Run);
        }

        var prompt = (await campaigns.ListAsync(cancellationToken))
            .Where(c => c.Definition.Kind == CampaignKinds.Prompt && !c.Cancelled)
            .ToList();
        var ids = new List<Guid>(files.Count);
        var taken = new List<string>();
        foreach (var campaign in prompt)
        {
            var selected = CampaignService.SelectedFiles(campaign.Definition, run);
            if (selected.Count > 0)
            {
                taken.Add(campaign.Name);
            }
            var awaited = selected.Count > 0 ? await campaigns.AwaitedCalibrationAsync(campaign.Name, run.Run, cancellationToken) : null;
            foreach (var file in selected)
            {
                var registered = Registered(campaign, run.Run, file, awaited);
                ids.Add(registered.FileId);
                await publisher.PublishBoundedAsync(registered, cancellationToken);
            }
        }
        return new IngestResult(run.Run, taken, files.Count, registration == RunRegistration.AlreadyRegistered, ids);
    }

    /// <summary>
    /// A raw file entering a campaign, with the campaign's terms and the calibration its run still waits for (null if
    /// none); its id is the same however often it is registered.
    /// </summary>
    public static FileRegistered Registered(CampaignRecord campaign, int run, RawFileRecord file, string? awaitedCalibration) =>
        new(FileIds.For(campaign.Name, file.Name!), run, file.Stream!, campaign.Name, file.Name!, file.Section, file.Size, file.Adler32!.ToLowerInvariant(),
            file.Events, campaign.Definition.Terms(), AwaitedCalibration: awaitedCalibration);

    /// <summary>A digest of the run's files in a canonical order, to tell a repeat from a change.</summary>
    public static string Digest(RunRecorded run)
    {
        var text = new StringBuilder();
        text.Append(run.Run.ToString(CultureInfo.InvariantCulture)).Append('\n');
        foreach (var f in run.Files!.OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            text.Append(CultureInfo.InvariantCulture, $"{f.Name}|{f.Stream}|{f.Section}|{f.Size}|{f.Adler32!.ToLowerInvariant()}|{f.Events}\n");
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
