using System.Net;
using Microsoft.Extensions.DependencyInjection;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// The whole flow with no area on this host but scratch: the archive and the unmerged outputs on a real XRootD server
/// over root://, and cache, output and logs on the same server over HTTP/WebDAV, each in a folder of its own.
/// </summary>
public sealed class When_every_area_but_scratch_is_on_a_storage_server(XrootdServer server) : IClassFixture<XrootdServer>
{
    [SkippableFact]
    public async Task Should_archive_every_file_once_with_the_checksum_the_server_reports_and_serve_logs_from_it()
    {
        server.Require();
        var top = $"pipeline-{Guid.NewGuid():N}";
        var root = server.RootUri.GetLeftPart(UriPartial.Authority);
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Areas:archive"] = $"{root}//{top}/archive",
            ["Pipeline:Areas:unmerged"] = $"{root}//{top}/unmerged",
            ["Pipeline:Areas:cache"] = new Uri(server.HttpUri, $"{top}/cache").AbsoluteUri,
            ["Pipeline:Areas:output"] = new Uri(server.HttpUri, $"{top}/output").AbsoluteUri,
            ["Pipeline:Areas:logs"] = new Uri(server.HttpUri, $"{top}/logs").AbsoluteUri,
        });
        Assert.All(new[] { pipeline.Areas.Archive, pipeline.Areas.Cache, pipeline.Areas.Unmerged, pipeline.Areas.Output, pipeline.Areas.Logs }, area => Assert.False(area.IsLocal));

        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 200));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);

        var audit = await pipeline.AuditAsync(runs);
        Assert.True(audit.Complete, $"lost {audit.Events!.EventsLost}, duplicated {audit.Events!.EventsDuplicated}, failed {audit.FailedRawFiles}");
        var files = await pipeline.AllFilesAsync();
        Assert.All(files, f => Assert.Equal(FileStates.Archived, f.CurrentState));
        var merged = await pipeline.Services.GetRequiredService<ICatalog>().ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None);
        Assert.NotEmpty(merged);
        Assert.Equal(merged.Count, merged.Select(m => m.Name).Distinct(StringComparer.Ordinal).Count());
        foreach (var entry in merged)
        {
            // The server's own checksum of what it holds, and the bytes on its disk, are what the catalog says.
            var stored = await pipeline.Areas.Archive.StatAsync(entry.Name, CancellationToken.None);
            Assert.Equal((entry.Size, entry.Adler32), (stored!.Size, stored.StoredAdler32));
            var onDisk = await File.ReadAllBytesAsync(Path.Combine(server.DataPath, top, "archive", entry.Name));
            Assert.Equal(entry.Adler32, Adler32Checksum.Format(Adler32Checksum.Of(onDisk)));
        }
        // Nothing half-written left on the server, and the staged copies, reconstruction outputs and merged files went
        // once archived (the outputs when the merger hears it, which may come just after the files are final).
        var left = await Eventually.Until(() => Task.FromResult(Directory.EnumerateFiles(Path.Combine(server.DataPath, top), "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(Path.Combine(server.DataPath, top), f)).ToList()),
            files => !files.Any(f => f.StartsWith("unmerged/", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "the unmerged outputs removed",
            files => string.Join(", ", files.Where(f => f.StartsWith("unmerged/", StringComparison.Ordinal))));
        Assert.DoesNotContain(left, f => f.Contains(StorageArea.TemporaryMarker, StringComparison.Ordinal));
        Assert.DoesNotContain(left, f => f.StartsWith("cache/", StringComparison.Ordinal) || f.StartsWith("output/", StringComparison.Ordinal));
        // Every job's outputs left the job's folder in scratch for the server: scratch holds none.
        Assert.Empty(Directory.EnumerateFiles(pipeline.Areas.Scratch.RootPath, "*.evt", SearchOption.AllDirectories));

        // A job's log is collected onto the server and served from there by the API.
        var withLogs = await Eventually.Until(pipeline.AllFilesAsync, all => all.All(f => f.LogNames.Count > 0), TimeSpan.FromSeconds(30), "collected logs");
        var log = withLogs[0].LogNames.First(n => n.EndsWith("job.log", StringComparison.Ordinal));
        Assert.True(File.Exists(Path.Combine(server.DataPath, top, "logs", log)));
        using var response = await pipeline.Http.GetAsync(new Uri("api/logs/" + log, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(await File.ReadAllTextAsync(Path.Combine(server.DataPath, top, "logs", log)), await response.Content.ReadAsStringAsync());
    }
}
