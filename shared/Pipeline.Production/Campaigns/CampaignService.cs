using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.State;

namespace Pipeline.Production.Campaigns;

/// <summary>The campaign exists under that name with another definition.</summary>
public sealed class ConflictingCampaignException(string name)
    : Exception($"A campaign named '{name}' exists with another definition; a campaign cannot change once created (create one under a new name).");

public sealed record CampaignCreated(CampaignRecord Campaign, bool AlreadyExisted);

/// <summary>What an operator can do to campaigns: create, re-prioritise, cancel, register calibrations, supersede releases.</summary>
public sealed class CampaignService(
    ICampaignStore campaigns,
    IRunRegistry runs,
    IFileSagaStore sagas,
    IFlowStore settings,
    CampaignDirectory directory,
    ArchiveLibrary archives,
    TimeProvider time)
{
    public const int AnnouncementPage = 500;

    /// <summary>
    /// Validates and stores a campaign. A reprocessing or Monte Carlo campaign counts the catalogued raw files it
    /// selects now (its feeder registers them in bounded batches afterwards); a prompt campaign waits for new runs.
    /// </summary>
    public async Task<CampaignCreated> CreateAsync(CampaignDefinition? request, string by, CancellationToken cancellationToken)
    {
        var errors = CampaignValidation.Validate(request, [.. archives.All.Select(a => a.Name)]);
        if (errors.Count > 0)
        {
            throw new InvalidCampaignException(errors);
        }
        var definition = request!;
        long expected = 0;
        var upTo = 0;
        if (definition.Kind != CampaignKinds.Prompt)
        {
            await foreach (var run in AnnouncementsAsync(cancellationToken))
            {
                upTo = run.Run;
                expected += SelectedFiles(definition, run).Count;
            }
            if (expected == 0)
            {
                throw new InvalidCampaignException(new Dictionary<string, string[]>
                {
                    ["selection"] = ["selects no catalogued raw file"],
                });
            }
        }
        var now = time.GetUtcNow();
        var record = new CampaignRecord(definition, CampaignStatus.Active, 1, definition.Digest(), by, now, now, expected, CampaignFeed.Start(upTo));
        var outcome = await campaigns.CreateCampaignAsync(record, cancellationToken);
        if (outcome == CampaignCreation.Conflicting)
        {
            throw new ConflictingCampaignException(record.Name);
        }
        directory.Invalidate();
        return new CampaignCreated(outcome == CampaignCreation.Created ? record : (await campaigns.GetCampaignAsync(record.Name, cancellationToken))!,
            outcome == CampaignCreation.AlreadyExists);
    }

    /// <summary>Every announced run (with its files), in run order, a page at a time.</summary>
    public async IAsyncEnumerable<RunRecorded> AnnouncementsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var after = 0;
        while (true)
        {
            var page = await runs.ListAnnouncementsAsync(after, AnnouncementPage, cancellationToken);
            foreach (var run in page)
            {
                yield return run;
            }
            if (page.Count < AnnouncementPage)
            {
                yield break;
            }
            after = page[^1].Run;
        }
    }

    /// <summary>The files of a run a campaign takes, in the canonical order its feeder walks them in.</summary>
    public static IReadOnlyList<RawFileRecord> SelectedFiles(CampaignDefinition definition, RunRecorded run)
    {
        var selection = definition.Selection ?? new InputSelection();
        return [.. CanonicalOrder(run.Files ?? []).Where(f => selection.Matches(run.Run, f.Stream!, f.Name!))];
    }

    public static IEnumerable<RawFileRecord> CanonicalOrder(IEnumerable<RawFileRecord> files) =>
        files.OrderBy(f => f.Stream, StringComparer.Ordinal).ThenBy(f => f.Section).ThenBy(f => f.Name, StringComparer.Ordinal);

    /// <summary>Sets a campaign's share of the reconstruction slots; null if there is no such campaign.</summary>
    public Task<CampaignRecord?> SetPriorityAsync(string name, int priority, CancellationToken cancellationToken) =>
        ChangeAsync(name, c => c with { Definition = c.Definition with { Priority = priority } }, cancellationToken);

    /// <summary>
    /// Cancels a campaign: its feeder stops, files not yet reconstructing end as cancelled (their staged copies
    /// given back), files already reconstructing finish and are merged and archived. Null if there is no such campaign.
    /// </summary>
    public async Task<(CampaignRecord Campaign, int FilesCancelled)?> CancelAsync(string name, string by, IPublishEndpoint publisher, CancellationToken cancellationToken)
    {
        var cancelled = await ChangeAsync(name, c => c with { Status = CampaignStatus.Cancelled }, cancellationToken);
        if (cancelled is null)
        {
            return null;
        }
        var count = 0;
        // Files not yet reconstructing end; those queued or reconstructing are told too, so that a failure is not retried.
        // The ones under way are listed first: one whose failure sends it back to staging meanwhile is found there next.
        foreach (var state in FileStates.HoldingSlot.Concat(FileStates.NotStarted))
        {
            string? after = null;
            do
            {
                var page = await sagas.ListAsync(new FileQuery(Campaign: name, State: state, After: after, Limit: 1000), cancellationToken);
                foreach (var file in page.Files)
                {
                    await publisher.PublishBoundedAsync(new CancelFile(file.Id, file.Run, file.Stream, file.Campaign, by), cancellationToken);
                    count += FileStates.NotStarted.Contains(state) ? 1 : 0;
                }
                after = page.Next;
            }
            while (after is not null);
        }
        return (cancelled, count);
    }

    private async Task<CampaignRecord?> ChangeAsync(string name, Func<CampaignRecord, CampaignRecord> change, CancellationToken cancellationToken)
    {
        while (true)
        {
            var stored = await campaigns.GetCampaignAsync(name, cancellationToken);
            if (stored is null)
            {
                return null;
            }
            var changed = change(stored) with { UpdatedAt = time.GetUtcNow() };
            if (await campaigns.ReplaceCampaignAsync(changed, stored.Version, null, cancellationToken))
            {
                directory.Invalidate();
                return changed with { Version = stored.Version + 1 };
            }
        }
    }

    /// <summary>Registers calibration constants for a run range (repeating a registration changes nothing) and tells the orchestrator.</summary>
    public async Task<bool> RegisterCalibrationAsync(CalibrationRegistered calibration, IPublishEndpoint publisher, CancellationToken cancellationToken)
    {
        var added = await campaigns.AddCalibrationAsync(
            new CalibrationRecord(calibration.Tag, calibration.RunFrom, calibration.RunTo, calibration.RegisteredBy, time.GetUtcNow()), cancellationToken);
        // Published even when known: files held meanwhile are checked again, which is harmless.
        await publisher.PublishBoundedAsync(calibration, cancellationToken);
        return added;
    }

    // ---- superseded releases and calibrations -----------------------------------------------

    public static string SupersededReleaseKey(string version) => "superseded:release:" + version;

    public static string SupersededCalibrationKey(string tag) => "superseded:calibration:" + tag;

    public Task SupersedeAsync(string key, string replacement, string by, CancellationToken cancellationToken) =>
        settings.SetSettingAsync(new FlowSetting(key, System.Text.Json.JsonSerializer.Serialize(replacement), by, time.GetUtcNow()), cancellationToken);

    /// <summary>Superseded release versions and calibration tags, each with what replaced it.</summary>
    public async Task<Supersessions> SupersessionsAsync(CancellationToken cancellationToken)
    {
        var all = await settings.ListSettingsAsync(cancellationToken);
        Dictionary<string, string> Of(string prefix) => all.Where(s => s.Key.StartsWith(prefix, StringComparison.Ordinal))
            .ToDictionary(s => s.Key[prefix.Length..], s => System.Text.Json.JsonSerializer.Deserialize<string>(s.Value)!, StringComparer.Ordinal);
        return new Supersessions(Of(SupersededReleaseKey("")), Of(SupersededCalibrationKey("")));
    }
}

public sealed record Supersessions(IReadOnlyDictionary<string, string> Releases, IReadOnlyDictionary<string, string> Calibrations)
{
    /// <summary>Why a campaign's outputs are stale, or null if they are not.</summary>
    public string? StaleReason(CampaignDefinition campaign)
    {
        var reasons = new List<string>();
        if (campaign.Release?.Version is { } version && Releases.TryGetValue(version, out var release))
        {
            reasons.Add($"release {version} superseded by {release}");
        }
        if (campaign.CalibrationTag is { } tag && Calibrations.TryGetValue(tag, out var calibration))
        {
            reasons.Add($"calibration {tag} superseded by {calibration}");
        }
        return reasons.Count == 0 ? null : string.Join("; ", reasons);
    }
}
