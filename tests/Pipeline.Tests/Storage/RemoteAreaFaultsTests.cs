using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Production.State;
using Pipeline.SampleExperiment;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Storage;

/// <summary>The storage server fails under the pipeline: killed mid-transfer, or its disk changes a file's bytes.</summary>
public sealed class When_the_storage_server_fails(XrootdServer server) : IClassFixture<XrootdServer>
{
    private Dictionary<string, string?> RemoteAreas(string top)
    {
        var root = server.RootUri.GetLeftPart(UriPartial.Authority);
        return new Dictionary<string, string?>
        {
            ["Pipeline:Areas:archive"] = $"{root}//{top}/archive",
            ["Pipeline:Areas:cache"] = new Uri(server.HttpUri, $"{top}/cache").AbsoluteUri,
            ["Pipeline:Areas:output"] = new Uri(server.HttpUri, $"{top}/output").AbsoluteUri,
            ["Pipeline:Areas:logs"] = new Uri(server.HttpUri, $"{top}/logs").AbsoluteUri,
        };
    }

    /// <summary>A source that hands out its first megabyte, then waits until the test lets it go on.</summary>
    private sealed class HeldSource(byte[] bytes, TaskCompletionSource halfway, Task goOn) : MemoryStream(bytes)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Position >= 1 << 20)
            {
                halfway.TrySetResult();
                await goOn.WaitAsync(cancellationToken);
            }
            // Up to the first megabyte's end, then on: the pause falls exactly there.
            var limit = Position < 1 << 20 ? (int)Math.Min(buffer.Length, (1 << 20) - Position) : buffer.Length;
            return await base.ReadAsync(buffer[..limit], cancellationToken);
        }
    }

    [SkippableTheory]
    [InlineData("root")]
    [InlineData("http")]
    public async Task Should_leave_nothing_under_the_final_name_when_the_server_dies_mid_upload_and_take_the_copy_again(string kind)
    {
        server.Require();
        var top = $"crash-{kind}-{Guid.NewGuid():N}";
        var location = kind == "root" ? $"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{top}/" : new Uri(server.HttpUri, top + "/").AbsoluteUri;
        var area = StorageAreas.FromConfiguration(new Dictionary<string, string?> { ["output"] = location }, Path.Combine(Path.GetTempPath(), top),
            remote: new RemoteStorageOptions { TimeoutSeconds = 60, ConnectTimeoutSeconds = 5, RequestTimeoutSeconds = 5 }).Output;
        var bytes = new byte[3 << 20];
        new Random(11).NextBytes(bytes);
        var halfway = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var goOn = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        var upload = area.WriteFromAsync("merged.raw", new HeldSource(bytes, halfway, goOn.Task), bytes.Length, CancellationToken.None);
        await halfway.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await server.KillAsync();
        goOn.SetResult();
        // Back at once, as a restarted server is. Over HTTP the cut copy fails; XRootD's client may instead recover
        // the write on the restarted server. Either way the file under its name, if any, is exactly what was sent
        // (the server's checksum was compared before the rename), and no temporary file stays.
        await server.StartAgainAsync();
        var cut = await Record.ExceptionAsync(() => upload);
        var final = Path.Combine(server.DataPath, top, "merged.raw");
        if (cut is not null)
        {
            Assert.False(File.Exists(final));
            Assert.Null(await area.StatAsync("merged.raw", CancellationToken.None));
            var (size, _) = await area.WriteFromAsync("merged.raw", new MemoryStream(bytes), bytes.Length, CancellationToken.None);
            Assert.Equal(bytes.Length, size);
        }
        Assert.Equal(bytes, await File.ReadAllBytesAsync(final));
        await Eventually.Until(() => Task.FromResult(Directory.EnumerateFiles(Path.Combine(server.DataPath, top)).Where(f => f != final).ToList()), left => left.Count == 0,
            TimeSpan.FromSeconds(30), "no temporary file left");
    }

    /// <summary>
    /// A local file copied to root:// whose bytes are not what the caller knows them to be (changed on this host's disk
    /// after it was checksummed): the server's checksum is compared with the known one before the rename, so the copy
    /// never takes its final name, even for a moment, and no temporary file stays.
    /// </summary>
    [SkippableFact]
    public async Task Should_never_give_a_copy_its_final_name_when_its_checksum_is_not_the_one_the_copier_knows()
    {
        server.Require();
        var top = $"known-{Guid.NewGuid():N}";
        using var local = new TempDirectory();
        var areas = StorageAreas.FromConfiguration(new Dictionary<string, string?> { ["archive"] = $"{server.RootUri.GetLeftPart(UriPartial.Authority)}//{top}/" }, local.Path);
        var bytes = new byte[256 << 10];
        new Random(5).NextBytes(bytes);
        Directory.CreateDirectory(areas.Output.Location.LocalPath);
        var known = Adler32Checksum.Format(Adler32Checksum.Of(bytes));
        // The file on this host's disk changes after its checksum was taken.
        bytes[1000] ^= 0xFF;
        await File.WriteAllBytesAsync(Path.Combine(areas.Output.Location.LocalPath, "merged.evt"), bytes);

        var refused = await Record.ExceptionAsync(() => StreamingCopy.CopyAsync(areas.Output, "merged.evt", areas.Archive, "merged.evt", CancellationToken.None, known));

        // xrdcp's own comparison fails the copy, or the check before the rename does: either way an I/O error that says so.
        Assert.IsAssignableFrom<IOException>(refused);
        Assert.Null(await areas.Archive.StatAsync("merged.evt", CancellationToken.None));
        Assert.Empty(Directory.Exists(Path.Combine(server.DataPath, top)) ? Directory.EnumerateFiles(Path.Combine(server.DataPath, top)) : []);
        // The same copy with the right expectation takes its name.
        var (size, adler32) = await StreamingCopy.CopyAsync(areas.Output, "merged.evt", areas.Archive, "merged.evt", CancellationToken.None,
            Adler32Checksum.Format(Adler32Checksum.Of(bytes)));
        Assert.Equal((bytes.LongLength, Adler32Checksum.Of(bytes)), (size, adler32));
    }

    [SkippableFact]
    public async Task Should_finish_every_file_once_when_the_server_is_killed_and_started_again_while_files_flow()
    {
        server.Require();
        var top = $"outage-{Guid.NewGuid():N}";
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: RemoteAreas(top));
        var runs = await pipeline.GenerateAsync(new SampleSpec(Runs: 2, FilesPerStream: 2, EventsPerFile: 300));
        await pipeline.IngestAsync(runs);
        // Killed once the first files are being worked on, so that stage-in, merging and archiving meet the outage.
        await Eventually.Until(() => pipeline.Sagas.CountByStateAsync(CancellationToken.None),
            counts => counts.Any(c => c.State is not ("Registered" or "Initial") && c.Files > 0), TimeSpan.FromSeconds(60), "files under way");
        await server.KillAsync();
        // The outage itself: how long the storage stays away, not a wait for anything.
        await Task.Delay(TimeSpan.FromSeconds(2));
        await server.StartAgainAsync();

        await pipeline.WaitForFinalAsync(8, TimeSpan.FromMinutes(4));
        var audit = await pipeline.AuditAsync(runs);
        Assert.True(audit.Complete, $"lost {audit.Events!.EventsLost}, duplicated {audit.Events!.EventsDuplicated}, failed {audit.FailedRawFiles}");
        Assert.All(await pipeline.AllFilesAsync(), f => Assert.Equal(FileStates.Archived, f.CurrentState));
    }

    [SkippableFact]
    public async Task Should_never_catalogue_a_raw_file_whose_bytes_changed_on_the_servers_disk()
    {
        server.Require();
        var top = $"flip-{Guid.NewGuid():N}";
        await using var pipeline = await PipelineUnderTest.StartAsync(settings: RemoteAreas(top));
        var run = (await pipeline.GenerateAsync(new SampleSpec(Runs: 1, FilesPerStream: 1, EventsPerFile: 40)))[0];
        var corrupted = run.Files![0];
        var onDisk = Path.Combine(server.DataPath, top, "archive", corrupted.Name!);
        var bytes = await File.ReadAllBytesAsync(onDisk);
        bytes[^1] ^= 0xFF;
        await File.WriteAllBytesAsync(onDisk, bytes);

        await pipeline.IngestAsync([run]);
        await pipeline.WaitForFinalAsync(2);

        var files = await pipeline.AllFilesAsync();
        var failed = Assert.Single(files, f => f.CurrentState == FileStates.Failed);
        Assert.Equal(corrupted.Name, failed.LogicalName);
        Assert.StartsWith("checksum mismatch staging", failed.FailureReason, StringComparison.Ordinal);
        Assert.Single(files, f => f.CurrentState == FileStates.Archived);
        var cache = Path.Combine(server.DataPath, top, "cache");
        Assert.Empty(Directory.Exists(cache) ? Directory.EnumerateFiles(cache, Path.GetFileName(corrupted.Name!), SearchOption.AllDirectories) : []);
    }
}
