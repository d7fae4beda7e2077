using System.Text.Json;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.Flow;
using Pipeline.Production.State;

namespace Pipeline.Reconstruction;

/// <summary>
/// What a reconstruction job made: the outputs its release reported in its manifest (<see cref="ReleaseManifest"/>), each
/// found in the job's folder and checksummed, and their copies into the unmerged area, where the merger reads them
/// (scratch is one host's alone). Used by the worker for a job it ran itself, and by the job wrapper on a compute node.
/// </summary>
public sealed class JobOutputCopies(StorageAreas areas, ILogger? logger = null)
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
    /// Copies outputs from the job's folder into the unmerged area under the same names, each compared with its checksum
    /// before it takes its name. A copy that fails (the storage server down, a copy that does not match) takes the outputs
    /// already copied with it, and throws.
    /// </summary>
    public async Task CopyIntoUnmergedAsync(IReadOnlyList<OutputFile> files, CancellationToken cancellationToken)
    {
        var copied = new List<OutputFile>(files.Count);
        try
        {
            foreach (var file in files)
            {
                await StreamingCopy.CopyAsync(areas.Scratch, file.Name, areas.Unmerged, file.Name, cancellationToken, file.Adler32);
                copied.Add(file);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            await ForgetAsync(copied);
            throw new IOException($"Could not copy the job's outputs into the unmerged area ({areas.Unmerged.Location}): {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Removes outputs copied into the unmerged area that will not be used. A removal that fails too (the server still
    /// down) leaves it to the leftover sweep, which removes outputs of files that are done.
    /// </summary>
    public async Task ForgetAsync(IEnumerable<OutputFile> files)
    {
        foreach (var file in files)
        {
            try
            {
                await areas.Unmerged.DeleteAsync(file.Name, CancellationToken.None);
            }
            catch (Exception ex)
            {
                logger?.LogWarning(ex, "Could not remove {Name} from the unmerged area; the leftover sweep will", file.Name);
            }
        }
    }
}

/// <summary>
/// A job's accepted outputs on their way to the merger: copied into the unmerged area (by the worker, or already by the
/// job on its compute node), they then hold the attempt's room there; refused ones are deleted and the room given back.
/// </summary>
public sealed class JobOutputs(StorageAreas areas, AreaGate gate, ILogger<JobOutputs> logger)
{
    private readonly JobOutputCopies _copies = new(areas, logger);

    /// <inheritdoc cref="JobOutputCopies.DescribeAsync"/>
    public Task<(IReadOnlyList<OutputFile> Files, string? Problem)> DescribeAsync(ReconstructFile message, string outputDirectory, CancellationToken cancellationToken) =>
        _copies.DescribeAsync(message, outputDirectory, cancellationToken);

    /// <summary>
    /// Copies accepted outputs from the job's folder into the unmerged area (<see cref="JobOutputCopies.CopyIntoUnmergedAsync"/>),
    /// then lets them take over the attempt's room there before anyone is told of them, so that the merger's release
    /// finds them. The job's copies go with the job's folder.
    /// </summary>
    public async Task ShipAsync(string attemptFolder, string outputDirectory, IReadOnlyList<OutputFile> files, CancellationToken cancellationToken)
    {
        await _copies.CopyIntoUnmergedAsync(files, cancellationToken);
        await TakeRoomAsync(attemptFolder, files);
        areas.Scratch.DeleteDirectory(outputDirectory);
    }

    /// <summary>Outputs a batch job copied into the unmerged area itself (compared there before they took their names): they take over the attempt's room.</summary>
    public Task TakeShippedAsync(string attemptFolder, IReadOnlyList<OutputFile> files) => TakeRoomAsync(attemptFolder, files);

    private async Task TakeRoomAsync(string attemptFolder, IReadOnlyList<OutputFile> files)
    {
        await gate.ReplaceAsync(StorageOptions.Unmerged, attemptFolder, [.. files.Select(f => new AreaFile(f.Name, f.Size))], CancellationToken.None);
        await gate.ReleaseAsync(StorageOptions.Scratch, attemptFolder);
    }

    /// <summary>Deletes a failed attempt's outputs (in the job's folder, and any a batch job copied) and gives the attempt's room in scratch and in the unmerged area back.</summary>
    public async Task DropAsync(string attemptFolder, string outputDirectory, IReadOnlyList<OutputFile>? shipped = null)
    {
        areas.Scratch.DeleteDirectory(outputDirectory);
        await _copies.ForgetAsync(shipped ?? []);
        await gate.ReleaseAsync(StorageOptions.Scratch, attemptFolder);
        await gate.ReleaseAsync(StorageOptions.Unmerged, attemptFolder);
    }
}
