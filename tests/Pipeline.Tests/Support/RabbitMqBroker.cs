using RabbitMQ.Client;
using Testcontainers.RabbitMq;

namespace Pipeline.Tests.Support;

/// <summary>
/// The real broker the integration tests run on: RABBITMQ_URI if given; otherwise a container where a
/// Docker engine runs; otherwise the local broker on 127.0.0.1 that `make test` installs and starts.
/// Each test gets a virtual host of its own when the local broker's rabbitmqctl is at hand, so queues
/// and exchanges of one test never see another's messages.
/// </summary>
public sealed class RabbitMqBroker : IAsyncLifetime
{
    private RabbitMqContainer? _container;
    private readonly List<string> _virtualHosts = [];

    public Uri BaseUri { get; private set; } = new("amqp://guest:guest@127.0.0.1:5672/");

    private bool CanMakeVirtualHosts { get; set; }

    public async Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable("RABBITMQ_URI");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            BaseUri = new Uri(configured);
        }
        else if (DockerEngine.Runs())
        {
            _container = new RabbitMqBuilder("rabbitmq:3.13-management").Build();
            await _container.StartAsync();
            BaseUri = new Uri(_container.GetConnectionString());
        }
        else
        {
            CanMakeVirtualHosts = File.Exists("/usr/sbin/rabbitmqctl");
        }
        await using var connection = await Connect(BaseUri);
    }

    /// <summary>A broker URI for one test: its own virtual host where possible.</summary>
    public async Task<Uri> IsolatedUriAsync()
    {
        if (!CanMakeVirtualHosts)
        {
            return BaseUri;
        }
        var vhost = "pipeline-test-" + Guid.NewGuid().ToString("N")[..10];
        await Rabbitmqctl("add_vhost", vhost);
        await Rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*");
        _virtualHosts.Add(vhost);
        return new UriBuilder(BaseUri) { Path = "/" + vhost }.Uri;
    }

    public static async Task<IConnection> Connect(Uri uri)
    {
        var factory = new ConnectionFactory { Uri = uri };
        try
        {
            return await factory.CreateConnectionAsync();
        }
        catch (Exception ex)
        {
            throw new InvalidOperationException(
                $"No RabbitMQ at {uri.Host}:{uri.Port}. `make test` starts one on 127.0.0.1; or set RABBITMQ_URI.", ex);
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var vhost in _virtualHosts)
        {
            await Rabbitmqctl("delete_vhost", vhost);
        }
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }

    private static async Task Rabbitmqctl(params string[] arguments)
    {
        var run = await Tool.RunAsync("rabbitmqctl", arguments);
        if (run.ExitCode != 0)
        {
            throw new InvalidOperationException($"rabbitmqctl {string.Join(' ', arguments)} failed: {run.Errors}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class RabbitMqCollection : ICollectionFixture<RabbitMqBroker>
{
    public const string Name = "RabbitMQ";
}
