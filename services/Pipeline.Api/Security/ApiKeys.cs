using System.ComponentModel.DataAnnotations;
using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;
using Pipeline.Infrastructure.Hosting;

namespace Pipeline.Api.Security;

/// <summary>What a key may do: viewers read, operators also act.</summary>
public static class ApiRoles
{
    public const string Viewer = "viewer";
    public const string Operator = "operator";

    public static readonly IReadOnlySet<string> All = new HashSet<string>(StringComparer.Ordinal) { Viewer, Operator };
}

/// <summary>Authorization policies of the admin API.</summary>
public static class ApiPolicies
{
    /// <summary>Reads: any valid key.</summary>
    public const string Read = "read";

    /// <summary>Actions that change production: operator keys only.</summary>
    public const string Act = "act";
}

public sealed class ApiKey
{
    [Required]
    [MinLength(16)]
    public string Key { get; set; } = "";

    [Required]
    [RegularExpression("^(viewer|operator)$")]
    public string Role { get; set; } = ApiRoles.Viewer;
}

/// <summary>Settings under "Pipeline:Api".</summary>
public sealed class ApiSecurityOptions
{
    public const string Section = "Pipeline:Api";

    /// <summary>Off only for a closed test bench: every request is then an operator's.</summary>
    public bool Authentication { get; set; } = true;

    /// <summary>Keys by the name of who holds them (the name shows in logs, the key never does).</summary>
    public Dictionary<string, ApiKey> Keys { get; set; } = [];

    /// <summary>
    /// A JSON file of keys in the same shape as <see cref="Keys"/>, such as a mounted secret. With no keys
    /// anywhere, the generated ones are written here (default: api-keys.json in the data directory).
    /// </summary>
    public string? KeysFile { get; set; }

    /// <summary>
    /// A request body larger than this is refused with 413 before it is read: a run event of ten thousand files is
    /// about 2 MB, and nothing the API takes needs more than a few times that.
    /// </summary>
    [System.ComponentModel.DataAnnotations.Range(1024, 1L << 30)]
    public long MaxRequestBodyBytes { get; set; } = 16L << 20;
}

/// <summary>
/// The keys in force: those configured and those in the keys file; with neither, a viewer and an operator
/// key generated at first start and kept under the data directory, readable by the owner only.
/// </summary>
public sealed class ApiKeyRing
{
    public const string HeaderName = "X-Api-Key";
    public const string GeneratedFileName = "api-keys.json";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    // Keys are compared by their SHA-256, in constant time, so neither the comparison's timing nor a memory
    // dump of the lookup table gives a key away.
    private readonly (byte[] Hash, string Holder, string Role)[] _keys;

    public ApiKeyRing(IOptions<ApiSecurityOptions> options, IOptions<PipelineOptions> pipeline, ILogger<ApiKeyRing> logger)
    {
        var settings = options.Value;
        var keys = new Dictionary<string, ApiKey>(settings.Keys, StringComparer.Ordinal);
        if (settings.KeysFile is { } file && File.Exists(file))
        {
            foreach (var (holder, key) in Read(file))
            {
                keys[holder] = key;
            }
        }
        if (settings.Authentication && keys.Count == 0)
        {
            GeneratedFile = Path.GetFullPath(settings.KeysFile ?? Path.Combine(pipeline.Value.DataDirectory, GeneratedFileName));
            keys = LoadOrGenerate(GeneratedFile);
            // Information, not a warning: it is what every first start of `make run` does, and it says where to look.
            logger.LogInformation("No API keys are configured: the keys of this installation are in {KeysFile} (owner-only); send one as the {Header} header", GeneratedFile, HeaderName);
        }
        foreach (var (holder, key) in keys)
        {
            var problems = new List<ValidationResult>();
            if (!Validator.TryValidateObject(key, new ValidationContext(key), problems, validateAllProperties: true))
            {
                throw new OptionsValidationException(ApiSecurityOptions.Section, typeof(ApiKey),
                    [$"API key '{holder}': {string.Join("; ", problems.Select(p => p.ErrorMessage))}"]);
            }
        }
        _keys = [.. keys.Select(k => (Hash(k.Value.Key), k.Key, k.Value.Role))];
    }

    /// <summary>Where generated keys were written, if they were.</summary>
    public string? GeneratedFile { get; }

    public int Count => _keys.Length;

    /// <summary>The holder and role of a presented key, or null.</summary>
    public (string Holder, string Role)? Find(string presented)
    {
        var hash = Hash(presented);
        (string, string)? found = null;
        foreach (var (keyHash, holder, role) in _keys)
        {
            // No early exit: every key is compared, whatever matches.
            if (CryptographicOperations.FixedTimeEquals(keyHash, hash))
            {
                found = (holder, role);
            }
        }
        return found;
    }

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    private static Dictionary<string, ApiKey> Read(string file)
    {
        try
        {
            return JsonSerializer.Deserialize<Dictionary<string, ApiKey>>(File.ReadAllText(file), Json)
                ?? throw new JsonException("the file holds no keys");
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            throw new OptionsValidationException(ApiSecurityOptions.Section, typeof(ApiSecurityOptions), [$"API keys file '{file}' cannot be read: {ex.Message}"]);
        }
    }

    private static Dictionary<string, ApiKey> LoadOrGenerate(string file)
    {
        if (File.Exists(file))
        {
            return Read(file);
        }
        var keys = new Dictionary<string, ApiKey>(StringComparer.Ordinal)
        {
            ["generated-viewer"] = new() { Key = NewKey(), Role = ApiRoles.Viewer },
            ["generated-operator"] = new() { Key = NewKey(), Role = ApiRoles.Operator },
        };
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        var temporary = file + ".tmp";
        // Created owner-only before a byte is written, then renamed into place: the keys are never readable by others.
        var create = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            create.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var stream = new FileStream(temporary, create))
        {
            JsonSerializer.Serialize(stream, keys, Json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temporary, file, overwrite: false);
        return keys;
    }

    private static string NewKey() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
}

/// <summary>Authenticates a request by its X-Api-Key header; answers 401 and 403 with problem details.</summary>
public sealed class ApiKeyAuthenticationHandler(
    IOptionsMonitor<AuthenticationSchemeOptions> options,
    ILoggerFactory logger,
    UrlEncoder encoder,
    ApiKeyRing keys,
    IOptions<ApiSecurityOptions> security,
    IProblemDetailsService problems)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        if (!security.Value.Authentication)
        {
            return Task.FromResult(Success("anyone", ApiRoles.Operator));
        }
        if (!Request.Headers.TryGetValue(ApiKeyRing.HeaderName, out var presented) || string.IsNullOrEmpty(presented))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }
        return Task.FromResult(keys.Find(presented.ToString()) is { } holder
            ? Success(holder.Holder, holder.Role)
            : AuthenticateResult.Fail("unknown API key"));
    }

    private AuthenticateResult Success(string holder, string role)
    {
        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, holder), new Claim(ClaimTypes.Role, role)], SchemeName);
        return AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName));
    }

    protected override async Task HandleChallengeAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status401Unauthorized;
        Response.Headers.WWWAuthenticate = $"{SchemeName} header=\"{ApiKeyRing.HeaderName}\"";
        await WriteProblem("Authentication required",
            $"Send a valid API key in the {ApiKeyRing.HeaderName} header." + (keys.GeneratedFile is null ? "" : " This installation's keys are in its data directory."));
    }

    protected override async Task HandleForbiddenAsync(AuthenticationProperties properties)
    {
        Response.StatusCode = StatusCodes.Status403Forbidden;
        await WriteProblem("Not allowed for this key", "This action needs an operator key; the key sent is a viewer's.");
    }

    private async Task WriteProblem(string title, string detail) =>
        await problems.WriteAsync(new ProblemDetailsContext
        {
            HttpContext = Context,
            ProblemDetails = { Status = Response.StatusCode, Title = title, Detail = detail },
        });
}
