using System.Text.RegularExpressions;

namespace Pipeline.Infrastructure.Processes;

/// <summary>
/// Fills {placeholders} in one argument of an external command's argument list (a release, a copy tool).
/// An unknown placeholder is an error, not a literal; values are never re-parsed, so no shell can see them.
/// </summary>
public static partial class ArgumentTemplate
{
    [GeneratedRegex(@"\{([a-z]+)\}")]
    private static partial Regex Placeholder();

    public static string Expand(string template, IReadOnlyDictionary<string, string> values) =>
        Placeholder().Replace(template, match => values.TryGetValue(match.Groups[1].Value, out var value)
            ? value
            : throw new FormatException($"Unknown placeholder {match.Value} in argument '{template}'."));

    /// <summary>The placeholders a template uses.</summary>
    public static IEnumerable<string> PlaceholdersOf(string template) =>
        Placeholder().Matches(template).Select(m => m.Groups[1].Value);
}
