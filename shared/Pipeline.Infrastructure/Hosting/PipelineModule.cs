using MassTransit;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Pipeline.Infrastructure.Hosting;

/// <summary>
/// One stage of the pipeline as something a host can be composed of: its services and its consumers.
/// A service's own Program hosts one module; the all-in-one host hosts them all with the same code.
/// </summary>
public sealed record PipelineModule(
    string Name,
    Action<IServiceCollection, IConfiguration> ConfigureServices,
    Action<IBusRegistrationConfigurator> ConfigureBus);
