using System.Text.Json;

namespace Pipeline.Cli;

/// <summary>
/// Where the admin API is and which key to send. Each comes from the first place that has it: the command line
/// (<c>--url</c>, <c>--api-key-file</c>), the environment (<c>PIPELINE_URL</c>, <c>PIPELINE_API_KEY</c>,
/// <c>PIPELINE_API_KEY_FILE</c>), the config file (<c>--config</c>, <c>PIPELINE_CONFIG</c>, else
/// <c>~/.config/pipeline/config.json</c>), else the all-in-one host's address. No option takes a key itself: a
/// key on the command line would stay in shell history and show in <c>ps</c>.
/// </summary>
public sealed record ConnectionSettings(Uri Url, string? ApiKey, string KeySource)
{
    public static readonly Uri DefaultUrl = new("http://127.0.0.1:8080");

    /// <summary>The settings a config file holds.</summary>
    private sealed record ConfigFile(string? Url, string? ApiKey, string? ApiKeyFile);

    public static ConnectionSettings Resolve(string? urlOption, string? keyFileOption, string? configOption, Func<string, string?> environment, TextWriter warnings)
    {
        var configPath = configOption ?? environment("PIPELINE_CONFIG") ?? DefaultConfigPath(environment);
        var config = ReadConfig(configPath, explicitly: configOption is not null || environment("PIPELINE_CONFIG") is not null, warnings);

        var url = ParseUrl(urlOption ?? environment("PIPELINE_URL") ?? config?.Url);
        var (key, source) =
            keyFileOption is not null ? (ReadKeyFile(keyFileOption), $"--api-key-file {keyFileOption}")
            : environment("PIPELINE_API_KEY") is { Length: > 0 } fromEnvironment ? (fromEnvironment.Trim(), "PIPELINE_API_KEY")
            : environment("PIPELINE_API_KEY_FILE") is { Length: > 0 } file ? (ReadKeyFile(file), $"PIPELINE_API_KEY_FILE ({file})")
            : config?.ApiKey is { Length: > 0 } inConfig ? (inConfig.Trim(), $"the config file {configPath}")
            : config?.ApiKeyFile is { Length: > 0 } configured ? (ReadKeyFile(configured), $"the key file {configured}, named in {configPath}")
            : ((string?)null, "nowhere");
        return new ConnectionSettings(url, key, source);
    }

    private static string DefaultConfigPath(Func<string, string?> environment) =>
        Path.Combine(environment("XDG_CONFIG_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(environment("HOME") ?? "", ".config"), "pipeline", "config.json");

    private static Uri ParseUrl(string? text)
    {
        if (text is null)
        {
            return DefaultUrl;
        }
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw new UsageException($"The API's URL must be an absolute http:// or https:// address, not '{text}'.");
        }
        if (url.UserInfo.Length > 0)
        {
            // Said without echoing the URL: its user part may hold a password.
            throw new UsageException("The API's URL must not carry a user or password; give the key in a file (--api-key-file) or PIPELINE_API_KEY.");
        }
        return url;
    }

    private static ConfigFile? ReadConfig(string path, bool explicitly, TextWriter warnings)
    {
        if (!File.Exists(path))
        {
            return explicitly ? throw new UsageException($"No config file at {path}.") : null;
        }
        ConfigFile? config;
        try
        {
            config = JsonSerializer.Deserialize<ConfigFile>(File.ReadAllText(path), Json);
        }
        catch (JsonException ex)
        {
            throw new UsageException($"The config file {path} is not valid JSON ({ex.Message}); it holds {{\"url\": …, \"apiKeyFile\": …}}.");
        }
        if (config?.ApiKey is not null && !OperatingSystem.IsWindows()
            && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.OtherRead)) != 0)
        {
            warnings.WriteLine($"warning: {path} holds an API key and others can read it; chmod 600 it.");
        }
        return config;
    }

    /// <summary>
    /// A key file holds the key alone, or is a keys file the API reads (<c>api-keys.json</c>: holders with a key and a
    /// role), of which the operator's key is taken, else the first.
    /// </summary>
    public static string ReadKeyFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new UsageException($"No API key file at {path}.");
        }
        var text = File.ReadAllText(path).Trim();
        if (!text.StartsWith('{'))
        {
            return text.Length > 0 ? text : throw new UsageException($"The API key file {path} is empty.");
        }
        try
        {
            using var keys = JsonDocument.Parse(text);
            var holders = keys.RootElement.EnumerateObject()
                .Select(h => (Role: h.Value.TryGetProperty("role", out var r) ? r.GetString() : null, Key: h.Value.TryGetProperty("key", out var k) ? k.GetString() : null))
                .Where(h => !string.IsNullOrEmpty(h.Key))
                .ToList();
            return holders.OrderBy(h => h.Role == "operator" ? 0 : 1).Select(h => h.Key).FirstOrDefault()
                ?? throw new UsageException($"The keys file {path} holds no key.");
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            throw new UsageException($"The API key file {path} is neither a key nor a keys file ({{\"name\": {{\"key\": …, \"role\": …}}}}).");
        }
    }

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };
}
