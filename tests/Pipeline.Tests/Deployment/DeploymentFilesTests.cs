using System.Collections;
using System.Reflection;
using Microsoft.Extensions.Configuration;
using Pipeline.Api.Security;
using Pipeline.Archiver;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Infrastructure.Storage;
using Pipeline.Merger;
using Pipeline.Orchestrator;
using Pipeline.Production.Campaigns;
using Pipeline.Production.State;
using Pipeline.Reconstruction;
using Pipeline.Tests.Support;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.Serialization;

namespace Pipeline.Tests.Deployment;

/// <summary>
/// The compose file and the Kubernetes manifests, checked against the code without a Docker engine or a
/// cluster: every service has a container built from its own Dockerfile, every setting a container is given
/// is one the services read and binds, the areas a stage uses are mounted, and KEDA watches queues that exist.
/// </summary>
public sealed partial class When_deploying_as_containers
{
    private static readonly string Root = Platform.RepositoryRoot;

    /// <summary>The storage areas each stage reads or writes (see the stages' consumers).</summary>
    private static readonly Dictionary<string, string[]> AreasOf = new()
    {
        ["api"] = [StorageOptions.Archive, StorageOptions.Logs],
        ["orchestrator"] = [],
        ["stager"] = [StorageOptions.Archive, StorageOptions.Cache],
        ["reconstruction"] = [StorageOptions.Cache, StorageOptions.Scratch, StorageOptions.Unmerged, StorageOptions.Logs],
        ["collector"] = [StorageOptions.Unmerged, StorageOptions.Logs],
        ["merger"] = [StorageOptions.Unmerged, StorageOptions.Output],
        ["archiver"] = [StorageOptions.Output, StorageOptions.Archive],
        // Every area but scratch, each worker's own, which no other host sees.
        ["monitor"] = [.. StorageOptions.KnownAreas.Where(area => area != StorageOptions.Scratch)],
    };

    private static readonly Type[] OptionTypes =
        [typeof(PipelineOptions), typeof(CampaignOptions), typeof(OrchestratorOptions), typeof(ReconstructionOptions), typeof(MergerOptions), typeof(ArchiverOptions), typeof(ApiSecurityOptions), typeof(Monitor.MonitorOptions),
         typeof(Pipeline.Production.Flow.FlowOptions), typeof(Stager.StagerOptions), typeof(Reconstruction.Batch.SlurmOptions)];


    private static IEnumerable<string> ServiceNames() =>
        Directory.GetDirectories(Path.Combine(Root, "services"), "Pipeline.*")
            .Select(Path.GetFileName)
            .OfType<string>()
            // The all-in-one host and the operators' command line are not containers of the deployment.
            .Where(project => project is not ("Pipeline.Host" or "Pipeline.Cli"))
            .Select(project => project["Pipeline.".Length..].ToLowerInvariant());

    private static Dictionary<object, object> Compose()
    {
        using var reader = File.OpenText(Path.Combine(Root, "compose", "docker-compose.yml"));
        // Merge keys (<<: *anchor) are part of the file's meaning: read it as Docker Compose does.
        return new DeserializerBuilder().Build().Deserialize<Dictionary<object, object>>(new MergingParser(new Parser(reader)));
    }

    private static List<Dictionary<object, object>> Manifests()
    {
        var documents = new List<Dictionary<object, object>>();
        var deserializer = new DeserializerBuilder().Build();
        foreach (var file in Directory.GetFiles(Path.Combine(Root, "compose", "kubernetes"), "*.yaml").Where(f => !f.EndsWith("kustomization.yaml", StringComparison.Ordinal)))
        {
            using var reader = File.OpenText(file);
            var parser = new Parser(reader);
            parser.Consume<StreamStart>();
            while (parser.Accept<DocumentStart>(out _))
            {
                if (deserializer.Deserialize<Dictionary<object, object>?>(parser) is { } document)
                {
                    documents.Add(document);
                }
            }
        }
        return documents;
    }

    private static Dictionary<object, object> Map(object? node) => Assert.IsType<Dictionary<object, object>>(node);

    private static List<object> List(object? node) => Assert.IsType<List<object>>(node);

    private static object? At(object node, params string[] path)
    {
        var current = node;
        foreach (var key in path)
        {
            if (current is not Dictionary<object, object> map || !map.TryGetValue(key, out current))
            {
                return null;
            }
        }
        return current;
    }

    /// <summary>True if the configuration key (':'-separated) names a property some options class binds.</summary>
    private static bool IsReadByTheServices(string key)
    {
        var areasPrefix = StorageOptions.Section + ":";
        if (key.StartsWith(areasPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return StorageOptions.KnownAreas.Contains(key[areasPrefix.Length..]);
        }
        foreach (var type in OptionTypes)
        {
            var section = (string)type.GetField("Section")!.GetValue(null)!;
            if (!key.StartsWith(section + ":", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            var current = type;
            var segments = key[(section.Length + 1)..].Split(':');
            for (var i = 0; i < segments.Length; i++)
            {
                var property = current.GetProperty(segments[i], BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
                if (property is null)
                {
                    break;
                }
                if (i == segments.Length - 1 && property.CanWrite)
                {
                    return true;
                }
                if (typeof(IDictionary).IsAssignableFrom(property.PropertyType) || typeof(IList).IsAssignableFrom(property.PropertyType))
                {
                    return true;
                }
                current = property.PropertyType;
            }
        }
        return false;
    }

    [Fact]
    public void Should_give_every_service_a_container_built_from_its_own_dockerfile()
    {
        var services = Map(Compose()["services"]);

        foreach (var name in ServiceNames())
        {
            Assert.True(services.ContainsKey(name), $"compose has no container for {name}");
            var project = $"Pipeline.{char.ToUpperInvariant(name[0])}{name[1..]}";
            var dockerfile = (string)At(services[name], "build", "dockerfile")!;
            Assert.Equal($"services/{project}/Dockerfile", dockerfile);
            Assert.Equal("..", At(services[name], "build", "context"));
            var text = File.ReadAllText(Path.Combine(Root, dockerfile));
            Assert.Contains($"dotnet publish services/{project}/{project}.csproj", text, StringComparison.Ordinal);
            Assert.Contains($"ENTRYPOINT [\"dotnet\", \"{project}.dll\"]", text, StringComparison.Ordinal);
            Assert.Contains("USER $APP_UID", text, StringComparison.Ordinal);
            Assert.Contains("HEALTHCHECK", text, StringComparison.Ordinal);
            var stages = text.Split('\n').Where(line => line.StartsWith("FROM ", StringComparison.Ordinal)).ToList();
            Assert.True(stages.Count >= 2, $"{dockerfile} is not a multi-stage build");
            Assert.StartsWith("FROM mcr.microsoft.com/dotnet/aspnet:", stages[^1], StringComparison.Ordinal);
            foreach (var copied in text.Split('\n').Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from", StringComparison.Ordinal)))
            {
                foreach (var source in copied.Split(' ')[1..^1])
                {
                    Assert.True(File.Exists(Path.Combine(Root, source)) || Directory.Exists(Path.Combine(Root, source)), $"{dockerfile} copies {source}, which does not exist");
                }
            }
        }
    }

    [Fact]
    public void Should_set_only_settings_the_services_read_and_bind_them()
    {
        var services = Map(Compose()["services"]);

        foreach (var name in ServiceNames())
        {
            var environment = Map(At(services[name], "environment")).ToDictionary(e => ((string)e.Key).Replace("__", ":", StringComparison.Ordinal), e => e.Value?.ToString());
            foreach (var key in environment.Keys)
            {
                Assert.True(IsReadByTheServices(key), $"{name} is given '{key}', which no service reads");
            }
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(environment).Build();
            var options = configuration.GetSection(PipelineOptions.Section).Get<PipelineOptions>()!;
            Assert.Equal((TransportKind.RabbitMq, StoreKind.Postgres, true), (options.Transport, options.Store, options.RabbitMq.QuorumQueues));
            Assert.StartsWith("amqp://", environment["Pipeline:RabbitMq:Uri"], StringComparison.Ordinal);
            // The password is the compose secret's file, never part of the connection string.
            Assert.DoesNotContain("password", options.Postgres.ConnectionString, StringComparison.OrdinalIgnoreCase);
            Assert.Equal("/run/secrets/postgres-password", options.Postgres.PasswordFile);
            Assert.Contains("postgres-password", List(At(services[name], "secrets")).Cast<string>());

            // Each area the stage uses is a folder of the storage server, but scratch: the container's own disk.
            var mounts = (At(services[name], "volumes") as List<object> ?? []).Cast<string>().ToList();
            foreach (var area in AreasOf[name])
            {
                var uri = new Uri(environment[$"{StorageOptions.Section}:{area}"]!);
                if (area == StorageOptions.Scratch)
                {
                    Assert.Equal("file", uri.Scheme);
                    Assert.Contains(uri.AbsolutePath, mounts);
                }
                else
                {
                    Assert.Equal(new Uri($"root://xrootd:1094//data/{area}/"), uri);
                }
            }
        }
    }

    /// <summary>Containers share nothing but the network: no volume is mounted by two of them, and none of the services' holds an area.</summary>
    [Fact]
    public void Should_mount_no_volume_in_two_containers()
    {
        var services = Map(Compose()["services"]);

        var named = services
            .SelectMany(service => (At(service.Value, "volumes") as List<object> ?? []).Cast<string>()
                .Where(volume => volume.Contains(':', StringComparison.Ordinal) && !volume.StartsWith('.'))
                .Select(volume => (Volume: volume.Split(':')[0], Service: (string)service.Key)))
            .ToList();

        Assert.All(named.GroupBy(v => v.Volume), volume => Assert.Single(volume));
        Assert.Equal("xrootd", Assert.Single(named, v => v.Volume == "storage").Service);
        foreach (var name in ServiceNames())
        {
            // Only an anonymous volume (a container's own, one per replica when scaled) or the API's keys.
            var volumes = (At(services[name], "volumes") as List<object> ?? []).Cast<string>();
            Assert.All(volumes, volume => Assert.True(!volume.Contains(':', StringComparison.Ordinal) || volume.StartsWith("api-keys:", StringComparison.Ordinal), $"{name} mounts {volume}"));
        }
    }

    [Fact]
    public void Should_run_postgresql_an_xrootd_server_with_checksums_and_rabbitmq_with_a_long_consumer_timeout()
    {
        var services = Map(Compose()["services"]);

        Assert.StartsWith("postgres:15", (string)At(services["postgres"], "image")!, StringComparison.Ordinal);
        Assert.Equal("/run/secrets/postgres-password", At(services["postgres"], "environment", "POSTGRES_PASSWORD_FILE"));
        Assert.Equal("./secrets/postgres-password", At(Compose(), "secrets", "postgres-password", "file"));
        Assert.Contains("compose/secrets/", File.ReadAllText(Path.Combine(Root, ".gitignore")), StringComparison.Ordinal);
        Assert.Equal("./xrootd", At(services["xrootd"], "build", "context"));
        var xrootd = File.ReadAllLines(Path.Combine(Root, "compose", "xrootd", "xrootd.cfg"));
        Assert.Contains("xrootd.chksum adler32", xrootd);
        Assert.Contains("all.export /data", xrootd);
        // Every image that reaches an area can run the XRootD tools.
        foreach (var name in ServiceNames().Where(name => AreasOf[name].Length > 0))
        {
            Assert.Contains("xrootd-client", File.ReadAllText(Path.Combine(Root, (string)At(services[name], "build", "dockerfile")!)), StringComparison.Ordinal);
        }
        var config = File.ReadAllText(Path.Combine(Root, "compose", "rabbitmq", "rabbitmq.conf"));
        var timeout = config.Split('\n').Single(l => l.StartsWith("consumer_timeout", StringComparison.Ordinal));
        Assert.True(long.Parse(timeout.Split('=')[1].Trim(), System.Globalization.CultureInfo.InvariantCulture) >= 3_600_000);
        Assert.Contains(List(At(services["rabbitmq"], "volumes")).Cast<string>(), v => v.StartsWith("./rabbitmq/rabbitmq.conf:", StringComparison.Ordinal));
    }

    [Fact]
    public void Should_give_kubernetes_the_same_images_with_probes_and_scale_on_queues_that_exist()
    {
        var manifests = Manifests();
        var composeServices = Map(Compose()["services"]);
        var deployments = manifests.Where(m => (string)m["kind"] == "Deployment").ToDictionary(m => (string)At(m, "metadata", "name")!);
        var queues = new[] { typeof(OrchestratorModule), typeof(Stager.StagerModule), typeof(ReconstructionModule), typeof(Collector.CollectorModule), typeof(MergerModule), typeof(ArchiverModule), typeof(Monitor.MonitorModule) }
            .SelectMany(module => module.Assembly.GetTypes())
            .Select(t => t.GetField("QueueName", BindingFlags.Public | BindingFlags.Static)?.GetRawConstantValue() as string)
            .OfType<string>()
            .ToHashSet();

        Assert.Contains("reconstruction", queues);
        // Queue names written out elsewhere (pausable stages, the watcher's list, the watchdog's map) are real ones.
        Assert.Subset(queues, Pipeline.Production.Control.PauseState.Stages.ToHashSet());
        Assert.Subset(queues, new Monitor.MonitorOptions().Queues.ToHashSet());
        Assert.Subset(queues, new[] { "Registered", "AwaitingCalibration", "Staging", "Staged", "Queued", "Reconstructing", "Reconstructed", "Merged" }.Select(Watchdog.NextStage).ToHashSet());
        Assert.Equal(queues.Except([Monitor.HeartbeatConsumerDefinition.QueueName]).Order(StringComparer.Ordinal), new Monitor.MonitorOptions().Queues.Order(StringComparer.Ordinal));
        foreach (var name in ServiceNames())
        {
            Assert.True(deployments.TryGetValue(name, out var deployment), $"no Deployment for {name}");
            var container = Map(Assert.Single(List(At(deployment, "spec", "template", "spec", "containers"))));
            Assert.Equal(At(composeServices[name], "image"), container["image"]);
            Assert.Equal("/health/ready", At(container, "readinessProbe", "httpGet", "path"));
            Assert.Equal("/health/live", At(container, "livenessProbe", "httpGet", "path"));
            foreach (var variable in At(container, "env") as List<object> ?? [])
            {
                var key = ((string)At(variable, "name")!).Replace("__", ":", StringComparison.Ordinal);
                Assert.True(IsReadByTheServices(key), $"the {name} Deployment sets '{key}', which no service reads");
            }
            // No pod mounts a volume another pod sees: the areas are the storage server's, scratch each pod's own.
            var volumes = At(deployment, "spec", "template", "spec", "volumes") as List<object> ?? [];
            Assert.All(volumes, volume => Assert.True(At(volume, "persistentVolumeClaim") is null, $"{name} claims a shared volume"));
            if (AreasOf[name].Contains(StorageOptions.Scratch))
            {
                var mount = List(At(container, "volumeMounts")).Single(m => (string)At(m, "mountPath")! == "/data/scratch");
                Assert.NotNull(At(volumes.Single(v => At(v, "name")!.Equals(At(mount, "name"))), "emptyDir"));
            }
        }
        Assert.DoesNotContain(manifests, m => (string)m["kind"] == "PersistentVolumeClaim");
        var scaled = manifests.Where(m => (string)m["kind"] == "ScaledObject").ToList();
        Assert.Contains(scaled, s => (string)At(s, "spec", "scaleTargetRef", "name")! == "reconstruction");
        foreach (var scaledObject in scaled)
        {
            Assert.True(deployments.ContainsKey((string)At(scaledObject, "spec", "scaleTargetRef", "name")!));
            foreach (var trigger in List(At(scaledObject, "spec", "triggers")))
            {
                if ((string)At(trigger, "type")! == "prometheus")
                {
                    // A backlog the API exports, for a stage it counts, taken once however many API pods export it.
                    var query = (string)At(trigger, "metadata", "query")!;
                    var stage = BacklogQuery().Match(query);
                    Assert.True(stage.Success, $"KEDA's query '{query}' is not the backlog of one stage, taken once per campaign");
                    Assert.Contains(stage.Groups[1].Value, Backlog.StatesOf.Keys.Append(global::Pipeline.Infrastructure.Telemetry.PipelineMetrics.Archive));
                    Assert.True(int.Parse((string)At(trigger, "metadata", "threshold")!, System.Globalization.CultureInfo.InvariantCulture) > 0);
                    continue;
                }
                var queue = (string)At(trigger, "metadata", "queueName")!;
                Assert.True(queues.Contains(queue), $"KEDA watches '{queue}', a queue no service declares");
            }
        }
        // Each reconstruction pod is asked to take as many files as it has slots.
        var reconstruction = Map(Assert.Single(List(At(deployments["reconstruction"], "spec", "template", "spec", "containers"))));
        var slots = List(At(reconstruction, "env")).Single(v => (string)At(v, "name")! == "Pipeline__Reconstruction__Slots");
        Assert.Equal(At(slots, "value"), At(Assert.Single(List(At(scaled.Single(s => (string)At(s, "metadata", "name")! == "reconstruction"), "spec", "triggers"))), "metadata", "threshold"));
        var configMap = Map(manifests.Single(m => (string)m["kind"] == "ConfigMap")["data"]);
        Assert.All(configMap.Keys.Cast<string>(), key => Assert.True(IsReadByTheServices(key.Replace("__", ":", StringComparison.Ordinal)), key));
        foreach (var area in StorageOptions.KnownAreas)
        {
            var uri = new Uri((string)configMap[$"Pipeline__Areas__{area}"]);
            Assert.True(area == StorageOptions.Scratch ? uri.Scheme == "file" : uri.Scheme is "root" or "roots" or "davs", $"the {area} area is {uri}");
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^sum\(max by \(campaign\) \(pipeline_backlog\{stage=""(\w+)""\}\)\)$")]
    private static partial System.Text.RegularExpressions.Regex BacklogQuery();

    [Fact]
    public void Should_list_every_manifest_in_the_kustomization()
    {
        var kustomization = new DeserializerBuilder().Build()
            .Deserialize<Dictionary<object, object>>(File.ReadAllText(Path.Combine(Root, "compose", "kubernetes", "kustomization.yaml")));
        var files = Directory.GetFiles(Path.Combine(Root, "compose", "kubernetes"), "*.yaml")
            .Select(Path.GetFileName)
            .Where(f => f != "kustomization.yaml")
            .Order(StringComparer.Ordinal);

        Assert.Equal(files, List(kustomization["resources"]).Cast<string>().Order(StringComparer.Ordinal));
    }
}
