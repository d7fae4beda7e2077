using System.Collections.Concurrent;
using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Hosting;

namespace Pipeline.Archiver;

/// <summary>
/// Merged files written to a nearline archive whose tape copy the endpoint has not reported yet. They are looked at
/// every poll; once every copy is on tape the file is sent to the archiver again, which then counts it archived, tells
/// its raw files and frees its place in the output area. A file still waiting after its archive's alert time, or whose
/// tape copy does not match, raises an alert (resolved when the file makes it). The list lives in this process: after
/// a restart the merger sends unarchived files again, and they are found waiting anew.
/// </summary>
public sealed class MigrationWatch(ArchiveLibrary archives, IAlerts alerts, IBus bus, TimeProvider time, ILogger<MigrationWatch> logger) : PeriodicWork(time, logger)
{
    private readonly ConcurrentDictionary<string, Waiting> _waiting = new(StringComparer.Ordinal);

    public static string AlertKey(string mergedName) => $"migration-overdue:{mergedName}";

    /// <summary>Merged files waiting for their tape copies.</summary>
    public int Count => _waiting.Count;

    public bool IsWatching(string mergedName) => _waiting.ContainsKey(mergedName);

    public void Watch(ArchiveMergedFile request, string archiveName, IReadOnlyList<string> copies, DateTimeOffset writtenAt) =>
        _waiting.AddOrUpdate(request.MergedName, _ => new Waiting(request, archiveName, copies, writtenAt, false),
            (_, earlier) => earlier with { Request = request, Copies = copies });

    /// <summary>The most frequent poll of the nearline archives (a minute when there is none: nothing is ever watched then).</summary>
    protected override TimeSpan Interval { get; } =
        TimeSpan.FromSeconds(archives.Nearline.Select(a => a.Options.PollSeconds).DefaultIfEmpty(60).Min());

    protected override string What => "Looking for merged files' tape copies";

    protected override bool PassAtStart => false;

    protected override async Task RunOnceAsync(CancellationToken stoppingToken)
    {
        foreach (var waiting in _waiting.Values)
        {
            try
            {
                await LookAsync(waiting, stoppingToken);
            }
            catch (IOException ex)
            {
                Logger.LogInformation("Could not ask about the tape copy of {MergedName}; asking again at the next look: {Reason}", waiting.Request.MergedName, ex.Message);
            }
        }
    }

    private async Task LookAsync(Waiting waiting, CancellationToken cancellationToken)
    {
        var request = waiting.Request;
        var pending = new List<string>();
        var problems = new List<string>();
        foreach (var copy in waiting.Copies)
        {
            var migration = await archives[copy].MigrationOfAsync(waiting.ArchiveName, request.Size, request.Adler32, cancellationToken);
            if (!migration.OnTape)
            {
                pending.Add(copy);
                if (migration.Problem is not null)
                {
                    problems.Add(migration.Problem);
                }
            }
        }
        var now = Time.GetUtcNow();
        if (pending.Count == 0)
        {
            _waiting.TryRemove(request.MergedName, out _);
            Logger.LogInformation("Merged file {MergedName} is on tape in {Archives} ({Seconds:F1} s after it was written)",
                request.MergedName, string.Join(", ", waiting.Copies), (now - waiting.WrittenAt).TotalSeconds);
            if (waiting.Alerted)
            {
                await alerts.ResolveAsync(AlertKey(request.MergedName), cancellationToken);
            }
            await bus.PublishBoundedAsync(request, cancellationToken);
            return;
        }
        var alertAfter = TimeSpan.FromSeconds(pending.Select(c => archives[c]).OfType<NearlineArchive>().Select(a => a.Options.MigrationAlertSeconds).DefaultIfEmpty(0).Min());
        if (!waiting.Alerted && (problems.Count > 0 || now - waiting.WrittenAt > alertAfter))
        {
            var text = $"Merged file {request.MergedName} of {request.Campaign}/{request.Dataset} was written to {string.Join(", ", pending)} "
                + $"{(now - waiting.WrittenAt).TotalMinutes:F0} min ago and is not on tape yet"
                + (problems.Count > 0 ? $": {string.Join("; ", problems)}" : "")
                + ". Its disk copy and the output area's are kept; it counts as archived once the endpoint reports the tape copy.";
            Logger.LogWarning("{Alert}", text);
            await alerts.RaiseAsync(AlertKey(request.MergedName), "migration-overdue", "warning", text, cancellationToken);
            _waiting.TryUpdate(request.MergedName, waiting with { Alerted = true }, waiting);
        }
    }

    private sealed record Waiting(ArchiveMergedFile Request, string ArchiveName, IReadOnlyList<string> Copies, DateTimeOffset WrittenAt, bool Alerted);
}
