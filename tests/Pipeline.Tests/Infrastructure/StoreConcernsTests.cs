using Pipeline.Production.State;

namespace Pipeline.Tests.Infrastructure;

/// <summary>The state store is arranged by concern: each concern's interface has one class per backend, found by what it implements.</summary>
public sealed class When_finding_the_stores_of_each_concern
{
    [Fact]
    public void Should_serve_every_concern_on_every_backend_with_one_class()
    {
        Assert.Contains(typeof(IFileSagaStore), StoreConcerns.All);
        Assert.Contains(typeof(ICatalog), StoreConcerns.All);
        Assert.Contains(typeof(ISingletonLeaseStore), StoreConcerns.All);
        Assert.Equal([typeof(ISqliteStore), typeof(IPostgresStore), typeof(IMongoStore)], StoreConcerns.Backends);
        foreach (var concern in StoreConcerns.All)
        {
            foreach (var backend in StoreConcerns.Backends)
            {
                Assert.True(backend.IsAssignableFrom(StoreConcerns.ImplementationOf(concern, backend)), $"{concern.Name} on {backend.Name}");
            }
        }
    }

    [Fact]
    public void Should_make_one_store_for_interfaces_one_class_serves()
    {
        using var folder = new Support.TempDirectory();
        using var backend = StoreBackend.Sqlite(Path.Combine(folder.Path, "pipeline.db"));

        Assert.Same(backend.Get<IRunRegistry>(), backend.Get<ICatalog>());
        Assert.Same(backend.Sagas, backend.Get<IFileSagaStore>());
    }

    [Fact]
    public void Should_say_which_concern_has_no_store_on_a_backend()
    {
        var refused = Assert.Throws<ArgumentException>(() => StoreConcerns.ImplementationOf(typeof(IDisposable), typeof(ISqliteStore)));

        Assert.Contains("No ISqliteStore serves IDisposable", refused.Message);
    }
}
