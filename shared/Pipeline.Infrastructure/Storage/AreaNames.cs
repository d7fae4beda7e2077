namespace Pipeline.Infrastructure.Storage;

/// <summary>
/// Names of files inside a storage area: relative, forward-slash separated, and unable to
/// leave the area (no "..", no absolute path, no control characters).
/// </summary>
public static class AreaNames
{
    public const int MaxLength = 1024;

    /// <summary>Returns why <paramref name="name"/> is not a safe name inside an area, or null if it is.</summary>
    public static string? Problem(string? name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return "is empty";
        }
        if (name.Length > MaxLength)
        {
            return $"is longer than {MaxLength} characters";
        }
        if (name.Any(char.IsControl))
        {
            return "contains a control character";
        }
        if (name.StartsWith('/') || name.Contains('\\') || name.Contains(':'))
        {
            return "must be a relative path with '/' separators";
        }
        foreach (var segment in name.Split('/'))
        {
            if (segment.Length == 0)
            {
                return "has an empty path segment";
            }
            if (segment is "." or "..")
            {
                return "must not contain '.' or '..' segments";
            }
            if (segment != segment.Trim())
            {
                return "has a path segment with leading or trailing spaces";
            }
        }
        return null;
    }

    public static bool IsSafe(string? name) => Problem(name) is null;
}
