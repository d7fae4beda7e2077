using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;

namespace Pipeline.Production.Campaigns;

/// <summary>What a campaign does with raw data.</summary>
public static class CampaignKinds
{
    /// <summary>Processes each new run as it is announced, with the latest approved release.</summary>
    public const string Prompt = "prompt";

    /// <summary>Processes every catalogued raw file in its selection again, with another release or calibration.</summary>
    public const string Reprocessing = "reprocessing";

    /// <summary>Generates simulated events run by run, under each run's recorded conditions.</summary>
    public const string MonteCarlo = "montecarlo";

    public static readonly IReadOnlyList<string> All = [Prompt, Reprocessing, MonteCarlo];
}

/// <summary>
/// A campaign as an operator defines it: what to process, with which release and calibration, into which
/// datasets, and how much of the farm it may have. Immutable once created, apart from its priority.
/// Every field is optional in the request so that validation can name each one missing.
/// </summary>
public sealed record CampaignDefinition
{
    public string? Name { get; init; }
    public string? Kind { get; init; }
    public ReleaseSpec? Release { get; init; }

    /// <summary>The calibration constants the release runs with ({calibration} in its arguments).</summary>
    public string? CalibrationTag { get; init; }

    /// <summary>Files wait (awaiting calibration) until <see cref="CalibrationTag"/> is registered for their run.</summary>
    public bool RequireCalibration { get; init; }

    public InputSelection? Selection { get; init; }

    /// <summary>Output datasets by name, each with the trigger bits that select events into it.</summary>
    public IReadOnlyDictionary<string, uint>? Datasets { get; init; }

    public long? MergeTargetBytes { get; init; }

    [JsonConverter(typeof(JsonStringEnumConverter<MergeOrdering>))]
    public MergeOrdering? Ordering { get; init; }

    /// <summary>The archive areas every merged file is written to (each verified and catalogued); the primary archive if none.</summary>
    public IReadOnlyList<string>? Copies { get; init; }

    /// <summary>This campaign's weight when campaigns compete for reconstruction slots (3 against 1 gets about 75%).</summary>
    public int? Priority { get; init; }

    public int? MaxAttempts { get; init; }

    /// <summary>Monte Carlo: events generated per recorded event of the run.</summary>
    public double? EventsMultiple { get; init; }

    /// <summary>What each of the campaign's jobs asks of a batch farm; each field left out takes the worker's setting.</summary>
    public BatchResources? Batch { get; init; }

    public const long DefaultMergeTargetBytes = 1L << 30;
    public const int DefaultPriority = 1;
    public const int DefaultMaxAttempts = 3;
    public const double DefaultEventsMultiple = 3;

    public IReadOnlyList<DatasetSelection> Selections =>
        [.. (Datasets ?? new Dictionary<string, uint>()).OrderBy(d => d.Key, StringComparer.Ordinal).Select(d => new DatasetSelection(d.Key, d.Value))];

    public long EffectiveMergeTargetBytes => MergeTargetBytes ?? DefaultMergeTargetBytes;
    public int EffectivePriority => Priority ?? DefaultPriority;
    public int EffectiveMaxAttempts => MaxAttempts ?? DefaultMaxAttempts;
    public double EffectiveEventsMultiple => EventsMultiple ?? DefaultEventsMultiple;
    public bool IsMonteCarlo => Kind == CampaignKinds.MonteCarlo;

    /// <summary>What each of the campaign's files is processed under, carried by its registration (a stored definition is complete).</summary>
    public CampaignTerms Terms() => new(Release?.Version ?? "", Selections, EffectiveMaxAttempts, IsMonteCarlo, CalibrationTag);

    private static readonly JsonSerializerOptions Canonical = new(JsonSerializerDefaults.Web);

    /// <summary>A digest of the definition (priority aside, which operators may change): tells a repeated request from a different one.</summary>
    public string Digest() =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(this with
        {
            Priority = null,
            Datasets = Datasets is null ? null : new SortedDictionary<string, uint>(Datasets.ToDictionary(), StringComparer.Ordinal),
        }, Canonical))));
}

/// <summary>An approved reconstruction release: its version, executable and argument template (no shell involved).</summary>
public sealed record ReleaseSpec
{
    public string? Version { get; init; }
    public string? Executable { get; init; }
    public IReadOnlyList<string>? Arguments { get; init; }
    public int? TimeoutSeconds { get; init; }

    public const int DefaultTimeoutSeconds = 6 * 3600;

    public int EffectiveTimeoutSeconds => TimeoutSeconds ?? DefaultTimeoutSeconds;

    public static ReleaseSpec From(ReleaseOptions options) => new()
    {
        Version = options.Version,
        Executable = options.Executable,
        Arguments = [.. options.EffectiveArguments],
        TimeoutSeconds = options.TimeoutSeconds,
    };
}

/// <summary>
/// A campaign's batch jobs' resources (Slurm's partition, account, QOS, CPUs and memory per job). The time limit is not
/// here: it follows the campaign's measured run times, within its release's <see cref="ReleaseSpec.TimeoutSeconds"/>.
/// </summary>
public sealed record BatchResources
{
    public string? Partition { get; init; }
    public string? Account { get; init; }
    public string? Qos { get; init; }
    public int? CpusPerJob { get; init; }
    public int? MemoryMegabytes { get; init; }

    public const int MaxCpusPerJob = 1024;
    public const int MaxMemoryMegabytes = 4 << 20;
}

/// <summary>Which raw files a campaign takes: by stream and run range, or an explicit list of raw files.</summary>
public sealed record InputSelection
{
    public IReadOnlyList<string>? Streams { get; init; }
    public int? RunFrom { get; init; }
    public int? RunTo { get; init; }

    /// <summary>Exactly these raw files (catalogued names); the other filters still apply.</summary>
    public IReadOnlyList<string>? Files { get; init; }

    public bool Matches(int run, string stream, string name) =>
        (RunFrom is null || run >= RunFrom)
        && (RunTo is null || run <= RunTo)
        && (Streams is not { Count: > 0 } || Streams.Contains(stream, StringComparer.Ordinal))
        && (Files is not { Count: > 0 } || Files.Contains(name, StringComparer.Ordinal));
}

/// <summary>Checks a definition and lists every problem, by field.</summary>
public static partial class CampaignValidation
{
    public const int MaxFiles = 1_000_000;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
    private static partial Regex DatasetPattern();

    public static bool IsName(string? name) => name is not null && NamePattern().IsMatch(name);

    public static IReadOnlyDictionary<string, string[]> Validate(CampaignDefinition? definition, IReadOnlyCollection<string> archiveAreas)
    {
        var errors = new ValidationProblems();
        void Add(string field, string problem) => errors.Add(field, problem);

        if (definition is null)
        {
            Add("body", "a campaign definition is required");
            return errors.ToDictionary();
        }
        if (!IsName(definition.Name))
        {
            Add("name", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
        }
        if (definition.Kind is null || !CampaignKinds.All.Contains(definition.Kind))
        {
            Add("kind", $"must be one of {string.Join(", ", CampaignKinds.All)}");
        }
        var release = definition.Release;
        if (release is null)
        {
            Add("release", "a release (version, executable, arguments) is required");
        }
        else
        {
            if (string.IsNullOrWhiteSpace(release.Version) || release.Version.Length > 64)
            {
                Add("release.version", "is required (at most 64 characters)");
            }
            if (string.IsNullOrWhiteSpace(release.Executable))
            {
                Add("release.executable", "is required");
            }
            else
            {
                TemplateProblem("release.executable", release.Executable, Add);
            }
            for (var i = 0; i < (release.Arguments?.Count ?? 0); i++)
            {
                if (release.Arguments![i] is null)
                {
                    Add($"release.arguments[{i}]", "must not be null");
                    continue;
                }
                TemplateProblem($"release.arguments[{i}]", release.Arguments[i], Add);
            }
            if (release.TimeoutSeconds is < 1 or > 7 * 24 * 3600)
            {
                Add("release.timeoutSeconds", "must be between 1 and 604800");
            }
        }
        if (definition.Batch is { } batch)
        {
            foreach (var (field, value) in new[] { ("partition", batch.Partition), ("account", batch.Account), ("qos", batch.Qos) })
            {
                if (value is not null && !IsName(value))
                {
                    Add($"batch.{field}", "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit");
                }
            }
            if (batch.CpusPerJob is < 1 or > BatchResources.MaxCpusPerJob)
            {
                Add("batch.cpusPerJob", $"must be between 1 and {BatchResources.MaxCpusPerJob}");
            }
            if (batch.MemoryMegabytes is < 1 or > BatchResources.MaxMemoryMegabytes)
            {
                Add("batch.memoryMegabytes", $"must be between 1 and {BatchResources.MaxMemoryMegabytes}");
            }
        }
        if (definition.CalibrationTag is not null && !IsName(definition.CalibrationTag))
        {
            Add("calibrationTag", "must be 1-64 letters, digits, '.', '_' or '-'");
        }
        if (definition.RequireCalibration && definition.CalibrationTag is null)
        {
            Add("requireCalibration", "needs a calibrationTag to wait for");
        }
        if (definition.Selection is { } selection)
        {
            if (selection.RunFrom is <= 0)
            {
                Add("selection.runFrom", "must be a positive run number");
            }
            if (selection.RunTo is <= 0)
            {
                Add("selection.runTo", "must be a positive run number");
            }
            if (selection.RunFrom is { } from && selection.RunTo is { } to && from > to)
            {
                Add("selection.runTo", "must not be below runFrom");
            }
            foreach (var stream in selection.Streams ?? [])
            {
                if (stream is null || !DatasetPattern().IsMatch(stream))
                {
                    Add("selection.streams", $"'{stream}' is not a stream name");
                }
            }
            if (selection.Files is { Count: > MaxFiles })
            {
                Add("selection.files", $"at most {MaxFiles} files");
            }
            foreach (var file in selection.Files ?? [])
            {
                if (AreaNames.Problem(file) is { } problem)
                {
                    Add("selection.files", $"'{file}': {problem}");
                    break;
                }
            }
            if (definition.Kind == CampaignKinds.Prompt && selection.Files is { Count: > 0 })
            {
                Add("selection.files", "a prompt campaign takes new runs; a list of files belongs to a reprocessing campaign");
            }
        }
        if (definition.Datasets is not { Count: > 0 })
        {
            Add("datasets", "at least one output dataset (name: trigger mask) is required");
        }
        else
        {
            foreach (var (name, mask) in definition.Datasets)
            {
                if (!DatasetPattern().IsMatch(name))
                {
                    Add($"datasets.{name}", "a dataset name is 1-64 letters, digits, '_' or '-'");
                }
                if (mask == 0)
                {
                    Add($"datasets.{name}", "a trigger mask of 0 selects no event");
                }
            }
        }
        if (definition.MergeTargetBytes is <= 0)
        {
            Add("mergeTargetBytes", "must be a positive number of bytes");
        }
        foreach (var copy in definition.Copies ?? [])
        {
            if (!archiveAreas.Contains(copy))
            {
                Add("copies", $"'{copy}' is not an archive area (known: {string.Join(", ", archiveAreas)})");
            }
        }
        if (definition.Copies is { } copies && copies.Distinct(StringComparer.Ordinal).Count() != copies.Count)
        {
            Add("copies", "an archive area appears more than once");
        }
        if (definition.Priority is < 1 or > 1000)
        {
            Add("priority", "must be between 1 and 1000");
        }
        if (definition.MaxAttempts is < 1 or > 100)
        {
            Add("maxAttempts", "must be between 1 and 100");
        }
        if (definition.EventsMultiple is { } multiple && (double.IsNaN(multiple) || multiple <= 0 || multiple > 1000))
        {
            Add("eventsMultiple", "must be above 0 and at most 1000");
        }
        if (definition.EventsMultiple is not null && definition.Kind != CampaignKinds.MonteCarlo)
        {
            Add("eventsMultiple", "only a Monte Carlo campaign generates events");
        }
        return errors.ToDictionary();
    }

    /// <summary>What a release's arguments may refer to; the worker fills each in per job.</summary>
    public static readonly IReadOnlySet<string> ReleasePlaceholders = new HashSet<string>(StringComparer.Ordinal)
    {
        "input", "outdir", "jobdir", "run", "stream", "section", "campaign", "attempt", "datasets", "release", "appdir",
        "calibration", "events", "seed", "conditions",
    };

    private static void TemplateProblem(string field, string template, Action<string, string> add)
    {
        foreach (var placeholder in Pipeline.Infrastructure.Processes.ArgumentTemplate.PlaceholdersOf(template).Where(p => !ReleasePlaceholders.Contains(p)).Distinct())
        {
            add(field, $"unknown placeholder {{{placeholder}}}; known: {string.Join(", ", ReleasePlaceholders.Order(StringComparer.Ordinal).Select(p => $"{{{p}}}"))}");
        }
    }
}

/// <summary>A definition that cannot be accepted, with every problem found, by field.</summary>
public sealed class InvalidCampaignException(IReadOnlyDictionary<string, string[]> errors)
    : Exception("Campaign rejected: " + string.Join("; ", errors.SelectMany(e => e.Value.Select(v => $"{e.Key}: {v}"))))
{
    public IReadOnlyDictionary<string, string[]> Errors { get; } = errors;
}
