using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.State;

namespace Pipeline.Reconstruction;

/// <summary>
/// What a reconstruction job made: the outputs its release reported in its manifest (<see cref="ReleaseManifest"/>), each
/// found on disk and checksummed. Accepted outputs stay in scratch for the merger and take over the attempt's room there;
/// refused ones are deleted and the room given back.
/// </summary>
public sealed class JobOutputs(StorageAreas areas, AreaGate gate)
{
    /// <summary>The outputs the release reported, or why they cannot be taken: a missing or invalid manifest, an output not asked for or not written.</summary>
    public async Task<(IReadOnlyList<OutputFile> Files, string? Problem)> DescribeAsync(ReconstructFile message, string outputDirectory, CancellationToken cancellationToken)
    {
        var manifestName = $"{outputDirectory}/{ReleaseManifest.FileName}";
        if (!areas.Scratch.Exists(manifestName))
        {
            return ([], $"the release wrote no {ReleaseManifest.FileName}");
        }
        List<ReleaseOutput>? manifest;
        try
        {
            await using var stream = areas.Scratch.OpenRead(manifestName);
            manifest = await JsonSerializer.DeserializeAsync<List<ReleaseOutput>>(stream, ReleaseManifest.Json, cancellationToken);
        }
        catch (JsonException ex)
        {
            return ([], $"{ReleaseManifest.FileName} is not valid: {ex.Message}");
        }
        var requested = message.Datasets.Select(d => d.Name).ToHashSet(StringComparer.Ordinal);
        var files = new List<OutputFile>();
        foreach (var entry in manifest ?? [])
        {
            if (!requested.Contains(entry.Dataset) || AreaNames.Problem(entry.File) is not null || entry.File.Contains('/', StringComparison.Ordinal))
            {
                return ([], $"the release reported an unexpected output '{entry.File}' for dataset '{entry.Dataset}'");
            }
            var name = $"{outputDirectory}/{entry.File}";
            if (!areas.Scratch.Exists(name))
            {
                return ([], $"the release reported output {entry.File} but did not write it");
            }
            var (size, adler) = await areas.Scratch.ChecksumAsync(name, cancellationToken);
            files.Add(new OutputFile($"{message.FileId:N}.a{message.Attempt}.{entry.Dataset}", entry.Dataset, name, size,
                Adler32Checksum.Format(adler), entry.Events, message.Run, message.Section));
        }
        return (files, null);
    }

    /// <summary>
    /// Keeps accepted outputs for the merger: the manifest, read into their description, goes (left behind it would stay
    /// in scratch for ever), and the outputs take over the attempt's reservation before anyone is told of them, so that
    /// the merger's release finds them.
    /// </summary>
    public async Task KeepAsync(string attemptFolder, string outputDirectory, IReadOnlyList<OutputFile> files)
    {
        areas.Scratch.Delete($"{outputDirectory}/{ReleaseManifest.FileName}");
        await gate.ReplaceAsync(StorageOptions.Scratch, attemptFolder, [.. files.Select(f => new AreaFile(f.Name, f.Size))], CancellationToken.None);
    }

    /// <summary>Deletes a failed attempt's outputs and gives the attempt's room in scratch back.</summary>
    public async Task DropAsync(string attemptFolder, string outputDirectory)
    {
        areas.Scratch.DeleteDirectory(outputDirectory);
        await gate.ReleaseAsync(StorageOptions.Scratch, attemptFolder);
    }
}
