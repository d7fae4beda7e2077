using Microsoft.Extensions.DependencyInjection;

namespace Pipeline.Infrastructure.Hosting;

public static class SettingsRegistration
{
    /// <summary>
    /// Binds a section of the configuration to <typeparamref name="TOptions"/>, checks its data annotations, and checks
    /// them at start-up: a bad setting stops the process with its message instead of failing at the first use. Bound
    /// once however many modules ask: a second binding would add a list setting's items again (a release's argument list
    /// twice).
    /// </summary>
    public static IServiceCollection AddSettings<TOptions>(this IServiceCollection services, string section) where TOptions : class
    {
        if (services.Any(service => service.ServiceType == typeof(BoundSection<TOptions>)))
        {
            return services;
        }
        services.AddSingleton<BoundSection<TOptions>>();
        services.AddOptions<TOptions>().BindConfiguration(section).ValidateDataAnnotations().ValidateOnStart();
        return services;
    }

    private sealed class BoundSection<TOptions>;
}
