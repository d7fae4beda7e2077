namespace Pipeline.Contracts;

/// <summary>
/// A raw file entered a campaign: the first event of its saga. It carries what the file's processing needs to know
/// of its campaign (<see cref="Terms"/>, fixed once the campaign is created), so that the saga reads no campaign table.
/// <see cref="AwaitedCalibration"/> is the calibration tag its run still lacked when it was registered (null if it may
/// start). <see cref="RunConditions"/> ("name=value,..." in name order) are the run's recorded conditions, for a Monte
/// Carlo file that simulates the run under them.
/// </summary>
public sealed record FileRegistered(
    Guid FileId,
    int Run,
    string Stream,
    string Campaign,
    string LogicalName,
    int Section,
    long Size,
    string Adler32,
    long Events,
    CampaignTerms Terms,
    string? RunConditions = null,
    string? AwaitedCalibration = null) : IFileMessage;

/// <summary>
/// The parts of a campaign's definition that every one of its files is processed under: the approved release, the
/// datasets and their trigger bits, the calibration the release runs with, the attempt budget, and whether the
/// files are simulated (Monte Carlo: nothing to stage).
/// </summary>
public sealed record CampaignTerms(
    string Release,
    IReadOnlyList<DatasetSelection> Datasets,
    int MaxAttempts,
    bool Simulated,
    string? CalibrationTag = null);
