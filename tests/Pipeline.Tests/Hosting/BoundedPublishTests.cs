using System.Reflection;
using MassTransit;
using Pipeline.Contracts;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Tests.Hosting;

/// <summary>
/// A publish whose confirmation never comes (RabbitMQ's .NET client on a connection lost in a partition) must fail
/// in bounded time, as a timeout, so that the consumer ends and its message is tried again; a caller's own
/// cancellation stays a cancellation.
/// </summary>
public sealed class When_the_broker_never_confirms_a_publish
{
    private static readonly InstanceHeartbeat Message = new("stager-1", "stager", "host", DateTimeOffset.UnixEpoch, DateTimeOffset.UnixEpoch);

    [Fact]
    public async Task Should_fail_with_a_timeout_that_names_the_message()
    {
        var endpoint = UnconfirmedPublishes.Create();

        var failed = await Assert.ThrowsAsync<TimeoutException>(() => BoundedPublish.PublishBoundedAsync(endpoint, Message, TimeSpan.FromMilliseconds(50), CancellationToken.None));

        Assert.Contains(nameof(InstanceHeartbeat), failed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Should_stay_a_cancellation_when_the_caller_cancels()
    {
        var endpoint = UnconfirmedPublishes.Create();
        using var stopping = new CancellationTokenSource();

        var publish = BoundedPublish.PublishBoundedAsync(endpoint, Message, TimeSpan.FromHours(1), stopping.Token);
        await stopping.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => publish);
    }

    [Fact]
    public async Task Should_return_once_the_broker_confirms()
    {
        var endpoint = UnconfirmedPublishes.Create(confirm: true);

        await BoundedPublish.PublishBoundedAsync(endpoint, Message, TimeSpan.FromHours(1), CancellationToken.None);

        Assert.Equal(1, ((UnconfirmedPublishes)(object)endpoint).Published);
    }

    /// <summary>A publish endpoint whose publishes wait for a confirmation that comes only if asked for, or end when cancelled.</summary>
    public class UnconfirmedPublishes : DispatchProxy
    {
        private bool _confirm;

        public int Published { get; private set; }

        public static IPublishEndpoint Create(bool confirm = false)
        {
            var endpoint = Create<IPublishEndpoint, UnconfirmedPublishes>();
            ((UnconfirmedPublishes)(object)endpoint)._confirm = confirm;
            return endpoint;
        }

        protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
        {
            if (targetMethod?.Name != nameof(IPublishEndpoint.Publish))
            {
                throw new NotSupportedException(targetMethod?.Name);
            }
            Published++;
            var token = args?.OfType<CancellationToken>().FirstOrDefault() ?? CancellationToken.None;
            return _confirm ? Task.CompletedTask : Task.Delay(Timeout.Infinite, token);
        }
    }
}

/// <summary>
/// Every message the services put on the broker goes through <see cref="BoundedPublish"/>: a publish, send, answer
/// or request made directly would wait for ever for a confirmation lost with its connection, and hold its consumer
/// and endpoint with it. A new one written directly is caught here.
/// </summary>
public sealed class When_the_services_put_a_message_on_the_broker
{
    /// <summary>Calls that wait for the broker's confirmation; a filter's <c>next.Send(context)</c> passes a message along a pipe and is not one.</summary>
    private static readonly System.Text.RegularExpressions.Regex Unbounded = new(
        @"(?<!next)\.(Publish|Send|RespondAsync|GetResponse)\s*(<[^>]*>)?\s*\(", System.Text.RegularExpressions.RegexOptions.Compiled);

    [Fact]
    public void Should_go_through_the_bounded_publish()
    {
        var root = Support.Platform.RepositoryRoot;
        var bounded = Path.Combine(root, "shared", "Pipeline.Infrastructure", "Hosting", "BoundedPublish.cs");
        var sources = new[] { "services", "shared" }
            .SelectMany(folder => Directory.EnumerateFiles(Path.Combine(root, folder), "*.cs", SearchOption.AllDirectories))
            .Where(file => !file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                && !file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .ToList();

        var direct = sources.Where(file => file != bounded)
            .SelectMany(file => File.ReadLines(file).Select((line, index) => (file, line, number: index + 1)))
            .Where(l => Unbounded.IsMatch(l.line))
            .Select(l => $"{Path.GetRelativePath(root, l.file)}:{l.number}: {l.line.Trim()}")
            .ToList();

        Assert.True(sources.Count > 100, $"only {sources.Count} sources found under {root}");
        Assert.Contains(sources, file => file == bounded);
        Assert.Empty(direct);
    }
}
