using Microsoft.Extensions.Logging.Abstractions;
using Pipeline.Contracts;
using Pipeline.Production.Jobs;
using Pipeline.Production.State;
using Pipeline.Stager;

namespace Pipeline.Tests.Storage;

public sealed class When_the_stager_queue_holds_requests_nobody_waits_for
{
    private static readonly Guid Waiting = Guid.NewGuid();
    private static readonly Guid Retried = Guid.NewGuid();
    private static readonly Guid Staged = Guid.NewGuid();
    private static readonly Guid Unknown = Guid.NewGuid();

    [Fact]
    public async Task Should_stage_each_file_once_for_its_current_attempt_only()
    {
        var states = new FixedStates(
            new FileStatus(Waiting, "prompt", 1, "physics", FileStates.Staging, false, 1),
            new FileStatus(Retried, "prompt", 1, "physics", FileStates.Staging, false, 2),
            new FileStatus(Staged, "prompt", 1, "physics", FileStates.Staged, false, 1));
        StageFile[] requests =
        [
            Request(Waiting, 1), Request(Waiting, 1), Request(Waiting, 1), // asked again after stalls
            Request(Retried, 1), Request(Retried, 2),                      // the attempt a failure replaced, and the one after it
            Request(Staged, 1),                                           // asked again, then staged before the stager came to it
            Request(Unknown, 1),                                          // the saga decides
        ];

        var wanted = await StageRequestFilter.WantedAsync(states, requests, r => r, NullLogger.Instance, CancellationToken.None);

        Assert.Equal([(Waiting, 1), (Retried, 2), (Unknown, 1)], wanted.Select(r => (r.FileId, r.Attempt)));
        Assert.Equal([Waiting, Retried, Staged, Unknown], states.Asked);
    }

    [Fact]
    public async Task Should_stage_every_distinct_request_when_the_orchestrator_does_not_answer()
    {
        StageFile[] requests = [Request(Waiting, 1), Request(Waiting, 1), Request(Retried, 1), Request(Retried, 2)];

        var wanted = await StageRequestFilter.WantedAsync(new FixedStates { Answers = false }, requests, r => r, NullLogger.Instance, CancellationToken.None);

        Assert.Equal([(Waiting, 1), (Retried, 1), (Retried, 2)], wanted.Select(r => (r.FileId, r.Attempt)));
    }

    [Fact]
    public void Should_give_each_attempt_its_own_copy_in_the_cache()
    {
        // A superseded attempt's job gives its copy back, and a late report of it is discarded: neither may touch the current attempt's.
        Assert.NotEqual(StageFileConsumer.CachedName(Request(Retried, 1)), StageFileConsumer.CachedName(Request(Retried, 2)));
        Assert.EndsWith("/raw/run1.raw", StageFileConsumer.CachedName(Request(Retried, 2)), StringComparison.Ordinal);
    }

    private static StageFile Request(Guid file, int attempt) => new(file, 1, "physics", "prompt", attempt, "raw/run1.raw", 10, "00000001");

    private sealed class FixedStates(params FileStatus[] files) : IFileStates
    {
        public List<Guid> Asked { get; } = [];

        public bool Answers { get; init; } = true;

        public Task<IReadOnlyList<FileStatus>> FindAsync(IReadOnlyList<Guid> fileIds, CancellationToken cancellationToken)
        {
            Asked.AddRange(fileIds);
            return Answers
                ? Task.FromResult<IReadOnlyList<FileStatus>>([.. files.Where(f => fileIds.Contains(f.FileId))])
                : Task.FromException<IReadOnlyList<FileStatus>>(new TimeoutException("No answer to FileStatesQuery within 35 s; asked again later."));
        }
    }
}
