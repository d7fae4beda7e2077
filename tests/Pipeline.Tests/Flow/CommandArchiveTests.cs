using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Infrastructure.Archive;
using Pipeline.Infrastructure.Checksums;
using Pipeline.Infrastructure.Storage;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Flow;

/// <summary>
/// The external-command archive with a small script standing in for a site's copy tool (put, get to stdout, and an
/// Adler-32 sum), able to fail with an exit code or to report a wrong checksum on demand.
/// </summary>
public sealed class When_archiving_through_an_external_copy_tool : IDisposable
{
    private const string Script = """
        #!/bin/sh
        # A stand-in copy tool: 'put SRC DEST', 'get SRC' (to stdout), 'sum FILE'. Every call is logged.
        here=$(dirname "$0")
        echo "$1" >> "$here/calls.log"
        case "$1" in
          put)
            if [ -e "$here/fail-put" ]; then echo "simulated drive error" >&2; exit 3; fi
            mkdir -p "$(dirname "$3")" && cp "$2" "$3" ;;
          get)
            cat "$2" ;;
          sum)
            [ -e "$2" ] || exit 1
            if [ -e "$here/corrupt-sum" ]; then echo "deadbeef $2"; exit 0; fi
            python3 -c 'import sys, zlib; print("%08x" % zlib.adler32(open(sys.argv[1], "rb").read()), sys.argv[1])' "$2" ;;
        esac
        """;

    private readonly TempDirectory _folder = new();
    private readonly string _tool;
    private readonly string _store;
    private readonly StorageArea _output;

    public When_archiving_through_an_external_copy_tool()
    {
        _tool = Path.Combine(_folder.Path, "tool", "copytool");
        Directory.CreateDirectory(Path.GetDirectoryName(_tool)!);
        File.WriteAllText(_tool, Script.Replace("\r\n", "\n"));
        File.SetUnixFileMode(_tool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        _store = Path.Combine(_folder.Path, "store") + "/";
        _output = new LocalArea("output", new Uri(Path.Combine(_folder.Path, "output")));
    }

    public void Dispose() => _folder.Dispose();

    private CommandArchive Archive() => new("tape", new CommandArchiveOptions
    {
        Url = _store,
        Write = [_tool, "put", "{source}", "{url}"],
        Read = [_tool, "get", "{url}"],
        Checksum = [_tool, "sum", "{url}"],
        Attempts = 3,
        RetryDelaySeconds = 0,
    }, NullLogger.Instance);

    private string[] Calls(string mode) =>
        [.. File.ReadAllLines(Path.Combine(Path.GetDirectoryName(_tool)!, "calls.log")).Where(l => l == mode)];

    private async Task<(long Size, string Adler32)> OutputFileAsync(string name, int bytes)
    {
        var data = new byte[bytes];
        new Random(bytes).NextBytes(data);
        var (size, adler) = await _output.WriteAsync(name, (s, ct) => s.WriteAsync(data, ct).AsTask(), CancellationToken.None);
        return (size, Adler32Checksum.Format(adler));
    }

    [SkippableFact]
    public async Task Should_write_verify_and_read_back_a_file_and_never_hand_a_name_to_a_shell()
    {
        Skip.If(Platform.Which("python3") is null, "python3 is not installed: the stand-in copy tool computes Adler-32 with it");
        var canary = Path.Combine(_folder.Path, "canary");
        // A hostile name reaches the tool as one argument: no shell ever parses it.
        var name = $"merged/muon/a;touch {canary};$(touch {canary}).evt";
        var (size, adler) = await OutputFileAsync("m.evt", 300_000);
        var archive = Archive();

        await archive.WriteAsync(name, _output, "m.evt", size, adler, CancellationToken.None);
        Assert.True(await archive.ExistsAsync(name, CancellationToken.None));
        var cache = new LocalArea("cache", new Uri(Path.Combine(_folder.Path, "cache")));
        var (readSize, readAdler) = await archive.ReadIntoAsync(name, cache, "back.evt", CancellationToken.None);

        Assert.Equal((size, adler), (readSize, Adler32Checksum.Format(readAdler)));
        Assert.False(File.Exists(canary));
        Assert.False(await archive.ExistsAsync("merged/muon/other.evt", CancellationToken.None));
    }

    [Fact]
    public async Task Should_retry_a_failing_copy_and_then_fail_with_its_exit_code_and_message()
    {
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(_tool)!, "fail-put"), "");
        var (size, adler) = await OutputFileAsync("m.evt", 1000);

        var failure = await Assert.ThrowsAsync<ArchiveException>(() => Archive().WriteAsync("merged/m.evt", _output, "m.evt", size, adler, CancellationToken.None));

        Assert.Contains("exited with code 3: simulated drive error", failure.Message);
        Assert.Contains("after 3 attempts", failure.Message);
        Assert.Equal(3, Calls("put").Length);
    }

    [Fact]
    public async Task Should_retry_a_checksum_mismatch_and_then_fail_naming_both_checksums()
    {
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(_tool)!, "corrupt-sum"), "");
        var (size, adler) = await OutputFileAsync("m.evt", 1000);

        var failure = await Assert.ThrowsAsync<ArchiveException>(() => Archive().WriteAsync("merged/m.evt", _output, "m.evt", size, adler, CancellationToken.None));

        Assert.Contains($"checksum mismatch writing merged/m.evt to tape: expected adler32 {adler}, the storage reports deadbeef", failure.Message);
        Assert.Equal(3, Calls("put").Length);
        Assert.Equal(3, Calls("sum").Length);
    }

    [Fact]
    public async Task Should_fail_a_read_whose_tool_fails_and_leave_nothing_in_the_target_area()
    {
        var cache = new LocalArea("cache", new Uri(Path.Combine(_folder.Path, "cache")));

        var failure = await Assert.ThrowsAsync<ArchiveException>(() => Archive().ReadIntoAsync("raw/missing.raw", cache, "x.raw", CancellationToken.None));

        Assert.Contains("reading raw/missing.raw from tape: the copy tool exited with code", failure.Message);
        Assert.Equal(3, Calls("get").Length);
        Assert.Empty(Directory.EnumerateFileSystemEntries(cache.RootPath));
    }

    [Fact]
    public void Should_refuse_settings_with_a_missing_command_or_an_unknown_placeholder()
    {
        var problems = CommandArchive.Problems(new CommandArchiveOptions { Write = ["cp", "{source}", "{destination}"], Checksum = ["sum", "{url}"] }).ToList();

        Assert.Contains("Read must name a command", problems);
        Assert.Contains("Write uses the unknown placeholder {destination} (known: {source}, {url}, {name})", problems);
    }
}
