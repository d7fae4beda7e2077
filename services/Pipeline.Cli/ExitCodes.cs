namespace Pipeline.Cli;

/// <summary>What `pipeline` exits with, for scripts.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Not found, refused, a failed check (an incomplete audit, a reconciliation that found something), or the API unreachable.</summary>
    public const int Failed = 1;

    /// <summary>The command line itself is wrong: an unknown option, a bad value, a missing argument.</summary>
    public const int Usage = 2;

    /// <summary>No key, a key the API refused, or a viewer's key for an action.</summary>
    public const int Unauthorised = 3;
}

/// <summary>A mistake on the command line found after parsing (two options that exclude each other, say): exit 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>A check or request that did not succeed, said as a sentence: exit 1 (or 3 when <see cref="Unauthorised"/>).</summary>
public sealed class CommandFailedException(string message, bool unauthorised = false) : Exception(message)
{
    public bool Unauthorised { get; } = unauthorised;
}
