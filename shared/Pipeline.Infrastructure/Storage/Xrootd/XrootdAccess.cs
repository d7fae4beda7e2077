using Pipeline.Infrastructure.Storage.Http;

namespace Pipeline.Infrastructure.Storage.Xrootd;

/// <summary>
/// The credentials of one root:// area, handed to the XRootD tools the way they take them: as the paths of files in
/// their environment, never as values on a command line. The tools read the files themselves, so a renewed token,
/// proxy or keytab is used by the next call.
/// </summary>
public static class XrootdAccess
{
    /// <summary>The environment for the area's tools; an access setting that names no readable file is refused, by its name only.</summary>
    public static IReadOnlyDictionary<string, string> Environment(string area, AreaAccessOptions access)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        if (access.KeytabFile is { } keytab)
        {
            environment["XrdSecSSSKT"] = Readable(area, "keytab", keytab);
        }
        if (access.TokenFile is { } token)
        {
            environment["BEARER_TOKEN_FILE"] = Readable(area, "token file", token);
        }
        if (access.ClientCertificate is { } certificate)
        {
            if (access.ClientKey is { } key)
            {
                environment["X509_USER_CERT"] = Readable(area, "client certificate", certificate);
                environment["X509_USER_KEY"] = Readable(area, "client key", key);
            }
            else
            {
                // A proxy holds certificate, key and chain in one file.
                environment["X509_USER_PROXY"] = Readable(area, "client certificate", certificate);
            }
        }
        if (access.CaPath is { } ca)
        {
            environment["X509_CERT_DIR"] = Directory.Exists(ca)
                ? Path.GetFullPath(ca)
                : throw new ArgumentException($"Area '{area}': the XRootD tools take a folder of CA certificates; the CA path {ca} is not one.");
        }
        return environment;
    }

    private static string Readable(string area, string what, string path)
    {
        try
        {
            using var file = File.OpenRead(path);
            return Path.GetFullPath(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // The reason, not the content: a message never carries a credential.
            throw new ArgumentException($"Area '{area}': the {what} {path} cannot be read ({ex.GetType().Name}).", ex is ArgumentException ? null : ex);
        }
    }
}
