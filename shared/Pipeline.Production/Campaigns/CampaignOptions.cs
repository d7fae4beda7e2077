using System.ComponentModel.DataAnnotations;
using Pipeline.Contracts;

namespace Pipeline.Production.Campaigns;

/// <summary>
/// The prompt campaign a deployment starts with: every announced run is processed with its release. It is
/// stored as a campaign like those created through the admin API the first time it is needed; a stored
/// campaign's definition never changes, so a new release means a new campaign.
/// </summary>
public sealed class CampaignOptions
{
    public const string Section = "Pipeline:Campaign";

    /// <summary>False for a deployment that only runs campaigns created through the admin API.</summary>
    public bool Enabled { get; set; } = true;

    [Range(1, 1000)]
    public int Priority { get; set; } = 1;

    /// <summary>The calibration constants the release runs with; with <see cref="RequireCalibration"/>, files wait for them.</summary>
    public string? CalibrationTag { get; set; }

    public bool RequireCalibration { get; set; }

    [Required, RegularExpression("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    public string Name { get; set; } = "prompt";

    [Required]
    public ReleaseOptions Release { get; set; } = new();

    /// <summary>Output datasets by name, each with the trigger bits that select events into it.</summary>
    public Dictionary<string, uint> Datasets { get; set; } = [];

    /// <summary>A merged file is closed once it reaches this size.</summary>
    [Range(1, long.MaxValue)]
    public long MergeTargetBytes { get; set; } = 1L << 30;

    /// <summary>A file that failed this many times stays failed until an operator retries it.</summary>
    [Range(1, 100)]
    public int MaxAttempts { get; set; } = 3;

    public static readonly IReadOnlyDictionary<string, uint> SampleDatasets = new Dictionary<string, uint>
    {
        ["muon"] = 0b0000_0011,
        ["electron"] = 0b0000_0100,
        ["jet"] = 0b0001_1000,
        ["minbias"] = 0b1000_0000,
    };

    public CampaignDefinition ToDefinition() => new()
    {
        Name = Name,
        Kind = CampaignKinds.Prompt,
        Release = ReleaseSpec.From(Release),
        CalibrationTag = CalibrationTag,
        RequireCalibration = RequireCalibration,
        Datasets = Selections.ToDictionary(s => s.Name, s => s.TriggerMask, StringComparer.Ordinal),
        MergeTargetBytes = MergeTargetBytes,
        Priority = Priority,
        MaxAttempts = MaxAttempts,
    };

    public IReadOnlyList<DatasetSelection> Selections =>
        [.. (Datasets.Count > 0 ? (IReadOnlyDictionary<string, uint>)Datasets : SampleDatasets)
            .OrderBy(d => d.Key, StringComparer.Ordinal)
            .Select(d => new DatasetSelection(d.Key, d.Value))];
}

/// <summary>
/// An approved reconstruction release: an executable and its argument list, with placeholders
/// ({input}, {outdir}, {jobdir}, {run}, {stream}, {section}, {campaign}, {attempt}, {datasets},
/// {release}, {appdir}) replaced per job. No shell is involved.
/// </summary>
public sealed class ReleaseOptions
{
    [Required]
    public string Version { get; set; } = "sample-1.0";

    [Required]
    public string Executable { get; set; } = "{appdir}/Pipeline.SampleExperiment";

    public List<string> Arguments { get; set; } = [];

    public static readonly IReadOnlyList<string> SampleArguments =
        ["reconstruct", "--input", "{input}", "--outdir", "{outdir}", "--datasets", "{datasets}", "--run", "{run}"];

    public IReadOnlyList<string> EffectiveArguments => Arguments.Count > 0 ? Arguments : SampleArguments;

    /// <summary>A job running longer than this is killed and counted as a failure.</summary>
    [Range(1, 7 * 24 * 3600)]
    public int TimeoutSeconds { get; set; } = 6 * 3600;
}
