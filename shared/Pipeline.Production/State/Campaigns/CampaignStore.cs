using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Campaigns;

namespace Pipeline.Production.State;

/// <summary>Campaigns as operators defined them, and the calibrations registered for runs.</summary>
public interface ICampaignStore
{
    /// <summary>
    /// Stores a new campaign. The same definition again is <see cref="CampaignCreation.AlreadyExists"/> (a
    /// repeated request); another definition under the same name is <see cref="CampaignCreation.Conflicting"/>.
    /// </summary>
    Task<CampaignCreation> CreateCampaignAsync(CampaignRecord campaign, CancellationToken cancellationToken);

    Task<CampaignRecord?> GetCampaignAsync(string name, CancellationToken cancellationToken);

    /// <summary>Every campaign, by name.</summary>
    Task<IReadOnlyList<CampaignRecord>> ListCampaignsAsync(CancellationToken cancellationToken);

    /// <summary>
    /// Replaces a campaign if its stored version is still <paramref name="expectedVersion"/>; the stored version
    /// becomes expectedVersion + 1. False (nothing changed) if someone changed it meanwhile. A singleton's write (the
    /// campaign feeder's) carries its <paramref name="fence"/> and is refused with <see cref="StaleFenceException"/> once stale.
    /// </summary>
    Task<bool> ReplaceCampaignAsync(CampaignRecord campaign, int expectedVersion, SingletonFence? fence, CancellationToken cancellationToken);

    /// <summary>Registers calibration constants for a run range; true if new, false if exactly this was registered before.</summary>
    Task<bool> AddCalibrationAsync(CalibrationRecord calibration, CancellationToken cancellationToken);

    /// <summary>Registered calibrations (of one tag, or all), by tag and first run.</summary>
    Task<IReadOnlyList<CalibrationRecord>> ListCalibrationsAsync(string? tag, CancellationToken cancellationToken);
}

public enum CampaignCreation
{
    Created,
    AlreadyExists,
    Conflicting,
}

public static class CampaignStatus
{
    public const string Active = "active";

    /// <summary>No new file starts; files already reconstructing finish and are archived.</summary>
    public const string Cancelled = "cancelled";
}

/// <summary>
/// A campaign as stored: its definition, its status, and for reprocessing and Monte Carlo how far the feeder
/// has gone through the catalogued runs. <see cref="Version"/> guards every change (compare-and-set).
/// </summary>
public sealed record CampaignRecord(
    CampaignDefinition Definition,
    string Status,
    int Version,
    string Digest,
    string CreatedBy,
    DateTimeOffset CreatedAt,
    DateTimeOffset UpdatedAt,
    long ExpectedFiles,
    CampaignFeed Feed)
{
    public string Name => Definition.Name!;

    public bool Cancelled => Status == CampaignStatus.Cancelled;
}

/// <summary>
/// Where a campaign's feeder stands: the raw files of runs before <see cref="Run"/>, and of that run those up to
/// index <see cref="Index"/> in the run's canonical order, are registered. The feeder goes up to
/// <see cref="UpToRun"/>, the last run catalogued when the campaign was created, and is then complete.
/// </summary>
public sealed record CampaignFeed(int Run, int Index, long Registered, bool Complete, int UpToRun)
{
    public static CampaignFeed Start(int upToRun) => new(0, -1, 0, upToRun == 0, upToRun);
}

public sealed record CalibrationRecord(string Tag, int RunFrom, int RunTo, string RegisteredBy, DateTimeOffset RegisteredAt)
{
    public bool Covers(int run) => run >= RunFrom && run <= RunTo;
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class CampaignStoreAccess
{
    extension(StoreBackend backend)
    {
        public ICampaignStore Campaigns => backend.Get<ICampaignStore>();
    }
}
