using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Processes;
using Pipeline.Production.Campaigns;

namespace Pipeline.Reconstruction.Batch;

/// <summary>
/// What a submission asks of Slurm: the job's name, its script, where it runs and writes its output, its time limit, and
/// its campaign's resources where they differ from the worker's settings, and the job's folder in the worker's scratch as
/// its comment (where a worker adopting it finds its request).
/// </summary>
public sealed record SlurmSubmission(string Name, string ScriptPath, string WorkingDirectory, string OutputPath, string ErrorPath, TimeSpan TimeLimit,
    BatchResources? Resources = null, string? Comment = null);

/// <summary>One job as Slurm lists it. <see cref="ExitCode"/> and <see cref="Signal"/> are the job script's.</summary>
public sealed record SlurmJob(long Id, string Name, string State, string Reason, int ExitCode, int Signal, DateTimeOffset? Started, DateTimeOffset? Ended, string Node,
    string WorkDirectory = "", string Comment = "")
{
    private static readonly HashSet<string> EndStates = new(StringComparer.Ordinal)
    {
        "COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "CANCELLED", "DEADLINE", "SPECIAL_EXIT", "REVOKED",
    };

    public bool HasEnded => EndStates.Contains(State);
}

/// <summary>A Slurm command that failed (the cluster unreachable, a submission refused), with the command's own message.</summary>
public sealed class SlurmException(string message) : Exception(message);

/// <summary>
/// Slurm's command-line tools as argument lists (never a shell): sbatch to submit, one squeue call for every job of this
/// user, scancel. Each command gets the configured slurm.conf and a time limit.
/// </summary>
public sealed class SlurmClient(IOptions<SlurmOptions> options)
{
    // squeue's fields, '|' after each: a job name cannot hold one (the prefix and a file id), the other fields never do.
    private const string ListFormat = "JobID:|,Name:|,State:|,Reason:|,exit_code:|,StartTime:|,EndTime:|,NodeList:|,WorkDir:|,Comment:|";

    private SlurmOptions Settings => options.Value;

    /// <summary>A failure that says the cluster or its tools did not answer this time: worth a warning and another try, not a stack.</summary>
    public static bool IsExpectedFailure(Exception failure) => failure is SlurmException or IOException or System.ComponentModel.Win32Exception;

    private TimeSpan CommandTimeout => TimeSpan.FromSeconds(Settings.CommandTimeoutSeconds);

    private IReadOnlyDictionary<string, string>? Environment =>
        string.IsNullOrEmpty(Settings.ConfigFile) ? null : new Dictionary<string, string> { ["SLURM_CONF"] = Settings.ConfigFile };

    private static readonly TimeSpan PartitionLimitAge = TimeSpan.FromMinutes(5);
    private readonly ConcurrentDictionary<string, (TimeSpan? Limit, DateTimeOffset ReadAt)> _partitionLimits = new(StringComparer.Ordinal);

    /// <summary>
    /// Submits the job; returns its id. Its time limit is held to the partition's maximum: a job asking for more would
    /// wait in the queue for ever (PartitionTimeLimit).
    /// </summary>
    public async Task<long> SubmitAsync(SlurmSubmission job, CancellationToken cancellationToken)
    {
        var partition = job.Resources?.Partition ?? Settings.Partition;
        var minutes = (int)Math.Ceiling(job.TimeLimit.TotalMinutes);
        if (await PartitionTimeLimitAsync(partition, cancellationToken) is { } ceiling)
        {
            minutes = Math.Min(minutes, (int)Math.Floor(ceiling.TotalMinutes));
        }
        minutes = Math.Max(1, minutes);
        var command = new List<string>
        {
            "sbatch", "--parsable",
            // Pipeline retries a job itself, as a new attempt under a new lease: Slurm must not run it again on its own.
            "--no-requeue",
            $"--job-name={job.Name}",
            $"--chdir={job.WorkingDirectory}",
            $"--output={job.OutputPath}",
            $"--error={job.ErrorPath}",
            "--open-mode=append",
            $"--time={minutes}",
            $"--cpus-per-task={job.Resources?.CpusPerJob ?? Settings.CpusPerJob}",
        };
        if ((job.Resources?.MemoryMegabytes ?? Settings.MemoryMegabytes) is var memory and > 0)
        {
            command.Add($"--mem={memory}");
        }
        foreach (var (option, value) in new[]
        {
            ("--partition", partition),
            ("--account", job.Resources?.Account ?? Settings.Account),
            ("--qos", job.Resources?.Qos ?? Settings.Qos),
        })
        {
            if (!string.IsNullOrEmpty(value))
            {
                command.Add($"{option}={value}");
            }
        }
        if (!string.IsNullOrEmpty(job.Comment))
        {
            command.Add($"--comment={job.Comment}");
        }
        command.Add(job.ScriptPath);
        var outcome = await ExternalCommand.RunAsync(command, null, CommandTimeout, cancellationToken, environment: Environment);
        // --parsable prints "id" or "id;cluster".
        var printed = outcome.Output.Trim().Split(';', 2)[0];
        if (!outcome.Succeeded || !long.TryParse(printed, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            throw new SlurmException($"sbatch refused job {job.Name}: {outcome.Describe()}");
        }
        return id;
    }

    /// <summary>
    /// The longest time limit a partition (the cluster's default one when none is named) allows, null when it has none,
    /// read with sinfo at most every five minutes; null too while sinfo cannot tell, leaving the limit to sbatch.
    /// </summary>
    public async Task<TimeSpan?> PartitionTimeLimitAsync(string? partition, CancellationToken cancellationToken)
    {
        partition ??= "";
        if (_partitionLimits.TryGetValue(partition, out var known) && DateTimeOffset.UtcNow - known.ReadAt < PartitionLimitAge)
        {
            return known.Limit;
        }
        var outcome = await ExternalCommand.RunAsync(["sinfo", "--noheader", "--format=%P|%l"], null, CommandTimeout, cancellationToken, environment: Environment);
        if (!outcome.Succeeded)
        {
            return null;
        }
        // One line per partition (and node state); the default partition's name ends with '*'.
        var limit = outcome.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split('|', 2))
            .Where(fields => fields.Length == 2 && (partition.Length == 0 ? fields[0].EndsWith('*') : fields[0].TrimEnd('*') == partition))
            .Select(fields => ParseTimeLimit(fields[1]))
            .FirstOrDefault();
        _partitionLimits[partition] = (limit, DateTimeOffset.UtcNow);
        return limit;
    }

    /// <summary>
    /// A time limit as Slurm prints it: [days-]hours:minutes:seconds, minutes:seconds, or minutes alone; null for
    /// "infinite", "UNLIMITED" or anything else it cannot read.
    /// </summary>
    public static TimeSpan? ParseTimeLimit(string text)
    {
        var days = 0;
        var clock = text.Trim();
        var withDays = false;
        if (clock.Split('-', 2) is [var dayText, var rest])
        {
            if (!int.TryParse(dayText, NumberStyles.None, CultureInfo.InvariantCulture, out days))
            {
                return null;
            }
            (clock, withDays) = (rest, true);
        }
        var fields = clock.Split(':');
        var numbers = new int[fields.Length];
        for (var i = 0; i < fields.Length; i++)
        {
            if (!int.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out numbers[i]))
            {
                return null;
            }
        }
        // After days the first field is hours; without days one field is minutes, two are minutes:seconds.
        return (withDays, numbers) switch
        {
            (_, [var h, var m, var s]) => new TimeSpan(days, h, m, s),
            (true, [var h, var m]) => new TimeSpan(days, h, m, 0),
            (true, [var h]) => new TimeSpan(days, h, 0, 0),
            (false, [var m, var s]) => new TimeSpan(0, m, s),
            (false, [var m]) => TimeSpan.FromMinutes(m),
            _ => null,
        };
    }

    /// <summary>Every job of this user whose name starts with the configured prefix, pending, running or recently ended, in one call.</summary>
    public async Task<IReadOnlyList<SlurmJob>> ListAsync(CancellationToken cancellationToken)
    {
        var outcome = await ExternalCommand.RunAsync(["squeue", "--me", "--states=all", "--noheader", $"--Format={ListFormat}"], null, CommandTimeout, cancellationToken, environment: Environment);
        if (!outcome.Succeeded)
        {
            throw new SlurmException($"squeue failed: {outcome.Describe()}");
        }
        var prefix = Settings.JobNamePrefix + "-";
        return [.. outcome.Output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(Parse).OfType<SlurmJob>().Where(j => j.Name.StartsWith(prefix, StringComparison.Ordinal))];
    }

    /// <summary>Cancels jobs (ids that already ended are ignored by Slurm).</summary>
    public async Task CancelAsync(IReadOnlyCollection<long> ids, CancellationToken cancellationToken)
    {
        if (ids.Count == 0)
        {
            return;
        }
        var outcome = await ExternalCommand.RunAsync(["scancel", .. ids.Select(i => i.ToString(CultureInfo.InvariantCulture))], null, CommandTimeout, cancellationToken, environment: Environment);
        if (!outcome.Succeeded && !outcome.ErrorTail.Contains("already completing or completed", StringComparison.OrdinalIgnoreCase))
        {
            throw new SlurmException($"scancel failed: {outcome.Describe()}");
        }
    }

    /// <summary>The name of a job: prefix, file id, attempt.</summary>
    public string JobName(Guid fileId, int attempt) => $"{Settings.JobNamePrefix}-{fileId:N}-a{attempt}";

    /// <summary>The file and attempt a job of this prefix runs, or null for a name this system did not give.</summary>
    public (Guid FileId, int Attempt)? Owner(string name)
    {
        var prefix = Settings.JobNamePrefix + "-";
        var rest = name.StartsWith(prefix, StringComparison.Ordinal) ? name[prefix.Length..] : "";
        var parts = rest.Split("-a", 2);
        return parts.Length == 2 && Guid.TryParseExact(parts[0], "N", out var file) && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var attempt)
            ? (file, attempt)
            : null;
    }

    internal static SlurmJob? Parse(string line)
    {
        var fields = line.Split('|');
        if (fields.Length < 9 || !long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return null;
        }
        // exit_code is the job script's wait status: the exit code above 8 bits, the signal below.
        var status = int.TryParse(fields[4], NumberStyles.None, CultureInfo.InvariantCulture, out var raw) ? raw : 0;
        // squeue prints "(null)" for a job without a comment.
        var comment = fields.Length > 9 && fields[9] != "(null)" ? fields[9] : "";
        return new SlurmJob(id, fields[1], fields[2], fields[3], status >> 8, status & 0x7f, Time(fields[5]), Time(fields[6]), fields[7], fields[8], comment);
    }

    // squeue prints the controller's local time without a zone, or N/A / Unknown / None.
    private static DateTimeOffset? Time(string text) =>
        DateTime.TryParseExact(text, "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture, DateTimeStyles.AssumeLocal, out var time) ? new DateTimeOffset(time) : null;
}
