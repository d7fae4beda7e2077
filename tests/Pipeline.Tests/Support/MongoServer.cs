using Testcontainers.MongoDb;

namespace Pipeline.Tests.Support;

/// <summary>
/// The MongoDB the Mongo-backed tests run on: MONGODB_URI if given (a replica set: the store commits runs
/// and merges in transactions), otherwise a single-node replica set in a container where a Docker engine
/// runs. With neither, <see cref="Uri"/> is null and <see cref="Unavailable"/> says why, so that those tests
/// are reported as skipped with the reason, never as passed.
/// </summary>
public sealed class MongoServer : IAsyncLifetime
{
    private MongoDbContainer? _container;

    public string? Uri { get; private set; }

    public string Unavailable { get; private set; } = "";

    public async Task InitializeAsync()
    {
        var configured = Environment.GetEnvironmentVariable("MONGODB_URI");
        if (!string.IsNullOrWhiteSpace(configured))
        {
            Uri = configured;
        }
        else if (DockerEngine.Runs())
        {
            _container = new MongoDbBuilder("mongo:8.0").WithReplicaSet("rs0").Build();
            await _container.StartAsync();
            Uri = _container.GetConnectionString();
        }
        else
        {
            Unavailable = "No MongoDB here: MONGODB_URI is not set and no Docker engine runs for Testcontainers "
                + "(a MongoDB server cannot be installed on this machine).";
        }
    }

    /// <summary>Skips the calling test, with the reason, when there is no server.</summary>
    public string RequireUri()
    {
        Skip.If(Uri is null, Unavailable);
        return Uri!;
    }

    public async Task DisposeAsync()
    {
        if (_container is not null)
        {
            await _container.DisposeAsync();
        }
    }
}
