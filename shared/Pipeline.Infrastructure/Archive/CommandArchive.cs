using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Processes;
using Pipeline.Infrastructure.Storage;

namespace Pipeline.Infrastructure.Archive;

/// <summary>
/// An experiment's mass storage reached through its copy tool. Writes are verified by the exit code and by the
/// Adler-32 the storage itself reports; reads stream the tool's standard output into the target area, checksummed
/// as the bytes arrive. A failed try is retried; after the last one the step fails with the last reason.
/// </summary>
public sealed partial class CommandArchive : IArchive
{
    private static readonly IReadOnlySet<string> Placeholders = new HashSet<string>(StringComparer.Ordinal) { "source", "url", "name" };

    private readonly CommandArchiveOptions _options;
    private readonly ILogger _logger;

    public CommandArchive(string name, CommandArchiveOptions options, ILogger logger)
    {
        var problems = Problems(options).ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException($"Archive area '{name}' (command): {string.Join("; ", problems)}.", nameof(options));
        }
        Name = name;
        _options = options;
        _logger = logger;
    }

    public string Name { get; }

    /// <summary>What is wrong with a command archive's settings (empty if nothing).</summary>
    public static IEnumerable<string> Problems(CommandArchiveOptions options)
    {
        foreach (var (what, command) in new[] { ("Write", options.Write), ("Read", options.Read), ("Checksum", options.Checksum) })
        {
            if (command.Count == 0)
            {
                yield return $"{what} must name a command";
            }
            foreach (var unknown in command.SelectMany(ArgumentTemplate.PlaceholdersOf).Where(p => !Placeholders.Contains(p)).Distinct())
            {
                yield return $"{what} uses the unknown placeholder {{{unknown}}} (known: {{source}}, {{url}}, {{name}})";
            }
        }
    }

    public TapeLocation? Locate(string name) => null;

    public async Task<bool> ExistsAsync(string name, CancellationToken cancellationToken) =>
        (await RunAsync(_options.Checksum, name, null, null, cancellationToken)).Succeeded;

    public async Task<(long Size, uint Adler32)> ReadIntoAsync(string name, StorageArea target, string targetName, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            string problem;
            try
            {
                return await target.WriteAsync(targetName, async (stream, token) =>
                {
                    var outcome = await RunAsync(_options.Read, name, null, (output, t) => output.CopyToAsync(stream, StreamingCopy.BufferSize, t), token);
                    if (!outcome.Succeeded)
                    {
                        // Thrown inside the write, so the partial copy is removed and never appears under its name.
                        throw new ArchiveException($"reading {name} from {Name}: the copy tool {outcome.Describe()}");
                    }
                }, cancellationToken);
            }
            catch (ArchiveException ex)
            {
                problem = ex.Message;
            }
            await RetryOrFailAsync(attempt, problem, cancellationToken);
        }
    }

    public async Task WriteAsync(string name, StorageArea source, string sourceName, long size, string adler32, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            var path = source is LocalArea folder
                ? folder.PathOf(sourceName)
                : throw new ArchiveException($"Archive '{Name}' runs a copy command on a file of this host; area '{source.Name}' is at {source.Location.Scheme}://, not a folder.");
            var problem = await TryWriteAsync(name, path, adler32, cancellationToken);
            if (problem is null)
            {
                return;
            }
            await RetryOrFailAsync(attempt, problem, cancellationToken);
        }
    }

    private async Task<string?> TryWriteAsync(string name, string sourcePath, string adler32, CancellationToken cancellationToken)
    {
        var copied = await RunAsync(_options.Write, name, sourcePath, null, cancellationToken);
        if (!copied.Succeeded)
        {
            return $"writing {name} to {Name}: the copy tool {copied.Describe()}";
        }
        var summed = await RunAsync(_options.Checksum, name, null, null, cancellationToken);
        if (!summed.Succeeded)
        {
            return $"checksumming {name} in {Name}: the checksum tool {summed.Describe()}";
        }
        var reported = HexWord().Match(summed.Output);
        if (!reported.Success)
        {
            return $"checksumming {name} in {Name}: the checksum tool printed no Adler-32";
        }
        return Adler32Checksum.Same(reported.Value, adler32)
            ? null
            : $"checksum mismatch writing {name} to {Name}: expected adler32 {adler32}, the storage reports {reported.Value.ToLowerInvariant()}";
    }

    private async Task RetryOrFailAsync(int attempt, string problem, CancellationToken cancellationToken)
    {
        if (attempt >= _options.Attempts)
        {
            throw new ArchiveException($"{problem} (after {attempt} attempts)");
        }
        _logger.LogWarning("Archive {Area} attempt {Attempt} of {Attempts} failed: {Problem}; trying again", Name, attempt, _options.Attempts, problem);
        await Task.Delay(TimeSpan.FromSeconds(_options.RetryDelaySeconds), cancellationToken);
    }

    private Task<CommandOutcome> RunAsync(IReadOnlyList<string> template, string name, string? sourcePath, Func<Stream, CancellationToken, Task>? readOutput, CancellationToken cancellationToken)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["name"] = name,
            ["url"] = _options.Url + name,
            ["source"] = sourcePath ?? "",
        };
        return ExternalCommand.RunAsync([.. template.Select(a => ArgumentTemplate.Expand(a, values))], readOutput, TimeSpan.FromSeconds(_options.TimeoutSeconds), cancellationToken);
    }

    [GeneratedRegex(@"\b[0-9A-Fa-f]{8}\b")]
    private static partial Regex HexWord();
}
