using Microsoft.Extensions.DependencyInjection;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage.Xrootd;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>
/// A second archive copy between two XRootD areas goes server to server (xrdcp --tpc only: the destination pulls the
/// file), checked against the catalog's Adler-32 at the destination, never through the archiver's host.
/// </summary>
public sealed class When_a_second_archive_copy_goes_between_xrootd_areas(XrootdServer server) : IClassFixture<XrootdServer>
{
    [SkippableFact]
    public async Task Should_copy_it_server_to_server_with_the_catalogued_checksum()
    {
        server.Require();
        var top = $"tpc-{Guid.NewGuid():N}";
        var root = server.RootUri.GetLeftPart(UriPartial.Authority);
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: new Dictionary<string, string?>
        {
            ["Pipeline:Areas:archive"] = $"{root}//{top}/archive",
            ["Pipeline:Areas:vault"] = $"{root}//{top}/vault",
            ["Pipeline:Archives:vault:Kind"] = "Disk",
            ["Pipeline:Flow:Datasets:muon:Copies:0"] = "archive",
            ["Pipeline:Flow:Datasets:muon:Copies:1"] = "vault",
        });
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 2, EventsPerFile: 100));
        await pipeline.IngestAsync(runs);
        await pipeline.WaitForFinalAsync(4);

        Assert.True((await pipeline.AuditAsync(runs)).Complete);
        var vaulted = (await pipeline.Services.GetRequiredService<ICatalog>().ListAsync(CatalogEntry.Merged, pipeline.Campaign.Name, CancellationToken.None))
            .Where(e => e.Area == "vault").ToList();
        Assert.NotEmpty(vaulted);
        var vault = (AreaArchive)pipeline.Services.GetRequiredService<ArchiveLibrary>()["vault"];
        // Every vault copy was pulled by the server from the archive copy, none streamed through this process.
        Assert.Equal((vaulted.Count, 0L), (vault.ThirdPartyCopies, vault.ThirdPartyFallbacks));
        foreach (var entry in vaulted)
        {
            var onDisk = await File.ReadAllBytesAsync(Path.Combine(server.DataPath, top, "vault", entry.Name));
            Assert.Equal(entry.Adler32, Adler32Checksum.Format(Adler32Checksum.Of(onDisk)));
        }
    }

    [SkippableFact]
    public async Task Should_leave_nothing_when_the_destination_holds_other_bytes_than_the_catalog_says()
    {
        server.Require();
        var top = $"tpc-{Guid.NewGuid():N}";
        var client = new XrootdClient(TimeSpan.FromSeconds(60));
        var from = new XrootdArea("from", new Uri($"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{top}/from"), client);
        var to = new XrootdArea("to", new Uri($"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{top}/to"), client);
        var bytes = new byte[100_000];
        new Random(5).NextBytes(bytes);
        await from.WriteFromAsync("a/file.evt", new MemoryStream(bytes), bytes.Length, CancellationToken.None);
        var wrong = Adler32Checksum.Format(Adler32Checksum.Of(bytes) ^ 1);

        await Assert.ThrowsAnyAsync<IOException>(() => to.CopyFromAsync(from, "a/file.evt", "a/file.evt", wrong, CancellationToken.None));

        var left = Directory.Exists(Path.Combine(server.DataPath, top, "to"))
            ? Directory.EnumerateFiles(Path.Combine(server.DataPath, top, "to"), "*", SearchOption.AllDirectories).ToList()
            : [];
        Assert.Empty(left);
        var right = await to.CopyFromAsync(from, "a/file.evt", "a/file.evt", Adler32Checksum.Format(Adler32Checksum.Of(bytes)), CancellationToken.None);
        Assert.Equal((bytes.Length, Adler32Checksum.Of(bytes)), right);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(Path.Combine(server.DataPath, top, "to", "a", "file.evt")));
    }
}
