using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Pipeline.Host;
using Pipeline.Production.Campaigns;
using Pipeline.Production.Hosting;
using Pipeline.Tests.Support;

namespace Pipeline.Tests.Hosting;

public sealed class When_a_service_runs_on_its_own
{
    public static TheoryData<string> Modules() => [.. PipelineApp.AllModules.Select(module => module.Name)];

    /// <summary>
    /// Each stage's container runs one module: everything it registers must be buildable from what that module and
    /// the service defaults register, without the other stages' registrations the all-in-one host adds.
    /// </summary>
    [Theory]
    [MemberData(nameof(Modules))]
    public void Should_have_every_service_it_uses_registered(string name)
    {
        using var folder = new TempDirectory();
        var module = PipelineApp.AllModules.Single(m => m.Name == name);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:DataDirectory"] = folder.Path,
            ["Pipeline:Transport"] = "InMemory",
        });
        builder.Host.UseDefaultServiceProvider(provider =>
        {
            provider.ValidateOnBuild = true;
            provider.ValidateScopes = true;
        });
        builder.AddPipeline(module);

        using var app = (IDisposable)builder.Build();
    }

    /// <summary>MassTransit reports its usage to a server of its makers unless told not to: a production reports nothing outside the site.</summary>
    [Theory]
    [MemberData(nameof(Modules))]
    public void Should_report_no_usage_to_a_server_outside(string name)
    {
        using var folder = new TempDirectory();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:DataDirectory"] = folder.Path,
            ["Pipeline:Transport"] = "InMemory",
        });
        builder.AddPipeline(PipelineApp.AllModules.Single(m => m.Name == name));

        using var app = builder.Build();

        Assert.False(app.Services.GetRequiredService<IOptions<MassTransit.UsageTelemetryOptions>>().Value.Enabled);
    }
}

public sealed class When_every_module_runs_in_one_host
{
    [Fact]
    public async Task Should_bind_a_shared_section_once_so_a_list_setting_is_not_repeated()
    {
        using var folder = new TempDirectory();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Pipeline:DataDirectory"] = folder.Path,
            ["Pipeline:Transport"] = "InMemory",
            ["Pipeline:Campaign:Release:Arguments:0"] = "reconstruct",
            ["Pipeline:Campaign:Release:Arguments:1"] = "--input",
            ["Pipeline:Campaign:Release:Arguments:2"] = "{input}",
        });
        // Five modules use the campaign directory, and each asks for its settings.
        builder.AddPipeline(PipelineApp.AllModules);
        await using var app = builder.Build();

        var campaign = app.Services.GetRequiredService<IOptions<CampaignOptions>>().Value;
        Assert.Equal(["reconstruct", "--input", "{input}"], campaign.Release.Arguments);
    }
}
