using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pipeline.Production.State;

namespace Pipeline.Production.Campaigns;

/// <summary>
/// The campaigns as this process last read them from the store, at most <see cref="RefreshInterval"/> old:
/// definitions never change once stored, and a cancellation or a new priority reaches every instance within
/// that interval. The configured prompt campaign is stored the first time anyone asks for campaigns.
/// </summary>
public sealed class CampaignDirectory(ICampaignStore store, IOptions<CampaignOptions> configured, TimeProvider time, ILogger<CampaignDirectory> logger)
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, (CampaignRecord? Campaign, DateTimeOffset ReadAt)> _byName = new(StringComparer.Ordinal);
    private (IReadOnlyList<CampaignRecord> Campaigns, DateTimeOffset ReadAt)? _all;
    private volatile bool _configuredStored;
    private readonly SemaphoreSlim _seeding = new(1, 1);

    public string? ConfiguredName => configured.Value.Enabled ? configured.Value.Name : null;

    public async Task<CampaignRecord?> GetAsync(string name, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_byName.TryGetValue(name, out var cached) && cached.Campaign is not null && now - cached.ReadAt < RefreshInterval)
        {
            return cached.Campaign;
        }
        await EnsureConfiguredAsync(cancellationToken);
        var campaign = await store.GetCampaignAsync(name, cancellationToken);
        _byName[name] = (campaign, now);
        return campaign;
    }

    public async Task<IReadOnlyList<CampaignRecord>> ListAsync(CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        if (_all is { } all && now - all.ReadAt < RefreshInterval)
        {
            return all.Campaigns;
        }
        await EnsureConfiguredAsync(cancellationToken);
        var campaigns = await store.ListCampaignsAsync(cancellationToken);
        _all = (campaigns, now);
        foreach (var campaign in campaigns)
        {
            _byName[campaign.Name] = (campaign, now);
        }
        return campaigns;
    }

    /// <summary>Forgets what was read, so the next question reads the store (after this process changed a campaign).</summary>
    public void Invalidate()
    {
        _all = null;
        _byName.Clear();
    }

    /// <summary>The campaign's release version, as last read (null for one not read yet).</summary>
    public string? Release(string name) => _byName.TryGetValue(name, out var cached) ? cached.Campaign?.Definition.Release?.Version : null;

    /// <summary>
    /// The calibration a file of this campaign and run still waits for, or null if it may start: its campaign
    /// requires none, or one registered under the campaign's tag covers the run.
    /// </summary>
    public async Task<string?> AwaitedCalibrationAsync(string campaign, int run, CancellationToken cancellationToken)
    {
        if ((await GetAsync(campaign, cancellationToken))?.Definition is not { RequireCalibration: true, CalibrationTag: { } tag })
        {
            return null;
        }
        var registered = await store.ListCalibrationsAsync(tag, cancellationToken);
        return registered.Any(c => c.Covers(run)) ? null : tag;
    }

    /// <summary>Whether the campaign was cancelled, as last read (false for one not read yet).</summary>
    public bool IsCancelled(string name) => _byName.TryGetValue(name, out var cached) && cached.Campaign?.Cancelled == true;

    private async Task EnsureConfiguredAsync(CancellationToken cancellationToken)
    {
        if (_configuredStored || !configured.Value.Enabled)
        {
            return;
        }
        await _seeding.WaitAsync(cancellationToken);
        try
        {
            if (_configuredStored)
            {
                return;
            }
            var definition = configured.Value.ToDefinition();
            var now = time.GetUtcNow();
            var record = new CampaignRecord(definition, CampaignStatus.Active, 1, definition.Digest(), "configuration", now, now, 0, CampaignFeed.Start(0));
            if (await store.CreateCampaignAsync(record, cancellationToken) == CampaignCreation.Conflicting)
            {
                logger.LogWarning("The configured campaign {Campaign} differs from the one stored under that name; the stored definition stays in force. "
                    + "A new release or calibration is a new campaign: give it another name", definition.Name);
            }
            _configuredStored = true;
        }
        finally
        {
            _seeding.Release();
        }
    }
}
