using Pipeline.Production.Ingest;

namespace Pipeline.Tests.Infrastructure;

public class When_deriving_file_ids
{
    [Fact]
    public void Should_follow_rfc_4122_version_5()
    {
        // The RFC's DNS namespace and a name with a well-known version-5 UUID.
        var dns = new Guid("6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        Assert.Equal(new Guid("886313e1-3b8a-5372-9b90-0c9aee199e5d"), FileIds.NameBased(dns, "python.org"));
    }

    [Fact]
    public void Should_give_one_id_per_campaign_and_name()
    {
        Assert.Equal(FileIds.For("prompt", "raw/a.raw"), FileIds.For("prompt", "raw/a.raw"));
        Assert.NotEqual(FileIds.For("prompt", "raw/a.raw"), FileIds.For("reprocess-2", "raw/a.raw"));
        Assert.NotEqual(FileIds.For("prompt", "raw/a.raw"), FileIds.For("prompt", "raw/b.raw"));
    }
}
