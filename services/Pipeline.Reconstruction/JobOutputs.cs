using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.State;

namespace Pipeline.Reconstruction;

/// <summary>
/// What a reconstruction job made: the outputs its release reported in its manifest (<see cref="ReleaseManifest"/>), each
/// found in the job's folder and checksummed. Accepted outputs leave this host through the unmerged area, where the
/// merger reads them (scratch is this host's alone); each copy is compared with the checksum taken here before it takes
/// its name there. They then hold the attempt's room in the unmerged area; refused ones are deleted and the room given back.
/// </summary>
public sealed class JobOutputs(StorageAreas areas, AreaGate gate, ILogger<JobOutputs> logger)
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
    /// Copies accepted outputs from the job's folder into the unmerged area under the same names, each compared with its
    /// checksum before it takes its name, then lets them take over the attempt's room there before anyone is told of
    /// them, so that the merger's release finds them. The job's copies go with the job's folder. A copy that fails
    /// (the storage server down, a copy that does not match) takes the outputs already copied with it, and the attempt fails.
    /// </summary>
    public async Task ShipAsync(string attemptFolder, string outputDirectory, IReadOnlyList<OutputFile> files, CancellationToken cancellationToken)
    {
        var shipped = new List<string>(files.Count);
        try
        {
            foreach (var file in files)
            {
                await StreamingCopy.CopyAsync(areas.Scratch, file.Name, areas.Unmerged, file.Name, cancellationToken, file.Adler32);
                shipped.Add(file.Name);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            foreach (var name in shipped)
            {
                await ForgetAsync(name);
            }
            throw new IOException($"Could not copy the job's outputs into the unmerged area ({areas.Unmerged.Location}): {ex.Message}", ex);
        }
        await gate.ReplaceAsync(StorageOptions.Unmerged, attemptFolder, [.. files.Select(f => new AreaFile(f.Name, f.Size))], CancellationToken.None);
        areas.Scratch.DeleteDirectory(outputDirectory);
        await gate.ReleaseAsync(StorageOptions.Scratch, attemptFolder);
    }

    /// <summary>Deletes a failed attempt's outputs and gives the attempt's room in scratch and in the unmerged area back.</summary>
    public async Task DropAsync(string attemptFolder, string outputDirectory)
    {
        areas.Scratch.DeleteDirectory(outputDirectory);
        await gate.ReleaseAsync(StorageOptions.Scratch, attemptFolder);
        await gate.ReleaseAsync(StorageOptions.Unmerged, attemptFolder);
    }

    /// <summary>
    /// Removes an output copied before a later one failed. A removal that fails too (the server still down) leaves it to
    /// the leftover sweep, which removes outputs of files that are done.
    /// </summary>
    private async Task ForgetAsync(string name)
    {
        try
        {
            await areas.Unmerged.DeleteAsync(name, CancellationToken.None);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Could not remove {Name} from the unmerged area after a failed copy; the leftover sweep will", name);
        }
    }
}
