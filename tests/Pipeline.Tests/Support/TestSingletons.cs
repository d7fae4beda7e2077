using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;
using Pipeline.Production.Control;
using Pipeline.Production.State;

namespace Pipeline.Tests.Support;

/// <summary>Singleton gates over a store's leases, for tests that build a singleton's service by hand.</summary>
public static class TestSingletons
{
    public static SingletonLeases Over(StoreBackend store, TimeProvider? time = null, string instance = "test", SingletonOptions? options = null) =>
        new(store.SingletonLeases, Options.Create(options ?? new SingletonOptions()), Options.Create(new PipelineOptions { InstanceName = instance }),
            time ?? TimeProvider.System, NullLoggerFactory.Instance);
}
