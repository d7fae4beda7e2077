using System.ComponentModel.DataAnnotations;

namespace Pipeline.Infrastructure.Hosting;

public enum TransportKind
{
    /// <summary>Everything in one process, messages in memory: the embedded default.</summary>
    InMemory,

    /// <summary>Durable queues on a RabbitMQ broker: production.</summary>
    RabbitMq,
}

/// <summary>How hard the embedded SQLite store flushes each commit (see <see cref="PipelineOptions.Durability"/>).</summary>
public enum SqliteDurability
{
    Full,
    Normal,
}

public enum StoreKind
{
    /// <summary>One SQLite database file: one host, the embedded default.</summary>
    Sqlite,

    /// <summary>A MongoDB replica set shared by every instance of every service: production.</summary>
    Mongo,

    /// <summary>A PostgreSQL server shared by every instance of every service: hosts that share nothing but the network.</summary>
    Postgres,
}

/// <summary>Settings every service reads, under "Pipeline".</summary>
public sealed class PipelineOptions
{
    public const string Section = "Pipeline";

    /// <summary>Root of the embedded defaults: the SQLite database and the storage areas not configured elsewhere.</summary>
    [Required]
    public string DataDirectory { get; set; } = "./data";

    public TransportKind Transport { get; set; } = TransportKind.InMemory;

    public RabbitMqOptions RabbitMq { get; set; } = new();

    public StoreKind Store { get; set; } = StoreKind.Sqlite;

    public SqliteOptions Sqlite { get; set; } = new();

    public MongoOptions Mongo { get; set; } = new();

    public PostgresOptions Postgres { get; set; } = new();

    /// <summary>Messages a receive endpoint takes ahead from the broker (MassTransit's default on 2 cores is 4).</summary>
    [Range(1, 10_000)]
    public int Prefetch { get; set; } = 32;

    /// <summary>"text" for people at a terminal, "json" for log collectors.</summary>
    [RegularExpression("^(text|json)$")]
    public string LogFormat { get; set; } = "text";

    /// <summary>How often this process tells the monitor it is alive.</summary>
    [Range(1, 3600)]
    public int HeartbeatSeconds { get; set; } = 15;

    /// <summary>Names this process in leases and logs; defaults to host name and process id.</summary>
    public string? InstanceName { get; set; }

    public string EffectiveInstanceName => InstanceName ?? $"{Environment.MachineName}-{Environment.ProcessId}";

    public string SqlitePath => Sqlite.Path ?? System.IO.Path.Combine(DataDirectory, "pipeline.db");
}

public sealed class RabbitMqOptions
{
    /// <summary>amqp://user:password@host:port/vhost</summary>
    public string Uri { get; set; } = "amqp://guest:guest@127.0.0.1:5672/";

    /// <summary>
    /// Declare every service queue as a quorum queue (replicated, poison-message aware): for clustered
    /// production brokers. A queue keeps its type once declared, so switch this on for a new broker or vhost.
    /// </summary>
    public bool QuorumQueues { get; set; }

    /// <summary>
    /// The nodes of a RabbitMQ cluster as host or host:port: connections go to the first that answers, and move to
    /// the next when theirs is lost. Empty: the host in <see cref="Uri"/> alone. The user, password and virtual host
    /// are still <see cref="Uri"/>'s.
    /// </summary>
    public IList<string> ClusterNodes { get; } = [];

    /// <summary>
    /// The AMQP heartbeat asked of the broker: a peer silent for about this long is taken as gone. The broker then
    /// hands a dead consumer's unacknowledged messages to another (a worker host cut off the network), and this
    /// process notices a broker it can no longer reach and reconnects.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(1, 600)]
    public int HeartbeatSeconds { get; set; } = 10;
}

public sealed class SqliteOptions
{
    public string? Path { get; set; }

    /// <summary>
    /// Full (default): each commit is on disk before a message is acknowledged. Normal: on the
    /// operating system, not yet on disk; faster, and safe against a crash of the process but not of the machine.
    /// </summary>
    public SqliteDurability Durability { get; set; } = SqliteDurability.Full;
}

public sealed class MongoOptions
{
    /// <summary>mongodb://host:port/?replicaSet=rs0 — a replica set (one node will do): runs and merges commit in transactions.</summary>
    public string ConnectionString { get; set; } = "mongodb://127.0.0.1:27017/?replicaSet=rs0";

    [RegularExpression("^[A-Za-z0-9_-]{1,63}$")]
    public string Database { get; set; } = "pipeline";

    /// <summary>How long a write waits for a majority of the replica set before it fails (a lost majority must not hang every request).</summary>
    [Range(0.1, 600)]
    public double WriteTimeoutSeconds { get; set; } = 10;
}

public sealed class PostgresOptions
{
    /// <summary>
    /// Npgsql's keywords without the password: "Host=db1;Port=5432;Database=pipeline;Username=pipeline", with
    /// "SSL Mode=VerifyFull;Root Certificate=/etc/pipeline/ca.pem" for TLS checked against the site's CA. A password
    /// here is refused at start-up: it would show wherever the setting is printed.
    /// </summary>
    public string ConnectionString { get; set; } = "Host=127.0.0.1;Port=5432;Database=pipeline;Username=pipeline";

    /// <summary>A file holding the password (its first line). Without it, Npgsql's own PGPASSWORD or PGPASSFILE, or none.</summary>
    public string? PasswordFile { get; set; }

    /// <summary>Connections each process keeps at most.</summary>
    [Range(1, 1000)]
    public int MaxConnections { get; set; } = 50;
}
