using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;

namespace Pipeline.Production.Failures;

/// <summary>
/// What kind of failure a file had, independent of which file: the stage, the exit code and the first
/// error line with its particulars (numbers, paths, ids, checksums) blanked out. A thousand files failing
/// the same way share one signature, so a systematic failure is one row of the failure table.
/// </summary>
public static partial class FailureSignature
{
    public const string Staging = "staging";
    public const string Reconstruction = "reconstruction";
    public const string Watchdog = "watchdog";

    private const int MaxPatternLength = 160;

    /// <summary>The pattern: stage, exit code and the normalised first error line.</summary>
    public static string Describe(string stage, int? exitCode, string reason, string? logTail)
    {
        var line = FirstErrorLine(logTail) ?? reason;
        var exit = exitCode is null ? "" : $" exit {exitCode.Value.ToString(CultureInfo.InvariantCulture)}";
        return $"{stage}{exit}: {Normalise(line)}";
    }

    /// <summary>A short, stable id of a pattern, for URLs and filters.</summary>
    public static string Id(string pattern) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(pattern)))[..12];

    /// <summary>The first line of a log tail that reads like an error, if any.</summary>
    public static string? FirstErrorLine(string? logTail)
    {
        if (string.IsNullOrWhiteSpace(logTail))
        {
            return null;
        }
        foreach (var line in logTail.Split('\n'))
        {
            if (ErrorWord().IsMatch(line))
            {
                return line.Trim();
            }
        }
        return null;
    }

    public static string Normalise(string line)
    {
        var text = Guids().Replace(line, "<id>");
        text = Paths().Replace(text, "<path>");
        text = Timestamps().Replace(text, "<time>");
        text = FileNames().Replace(text, "<file>");
        text = HexRuns().Replace(text, "<hex>");
        text = Numbers().Replace(text, "<n>");
        text = Spaces().Replace(text, " ").Trim();
        return text.Length <= MaxPatternLength ? text : text[..MaxPatternLength] + "…";
    }

    [GeneratedRegex(@"\b(error|fatal|exception|abort(ed)?|segmentation fault|killed|timed out|mismatch)\b", RegexOptions.IgnoreCase)]
    private static partial Regex ErrorWord();

    [GeneratedRegex(@"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")]
    private static partial Regex Guids();

    // A token with a slash in it is a path or a logical file name: which one does not make another kind of failure.
    [GeneratedRegex(@"(?<![\w<])(\.{0,2}/)?[\w.\-+]+(/[\w.\-+<>]+)+/?")]
    private static partial Regex Paths();

    // A file name with a number in it (run001000_physics_0001.raw) names one file, not a kind of failure.
    [GeneratedRegex(@"\b[\w-]*\d[\w-]*\.[A-Za-z][A-Za-z0-9]{0,5}\b")]
    private static partial Regex FileNames();

    [GeneratedRegex(@"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")]
    private static partial Regex Timestamps();

    [GeneratedRegex(@"\b(0x)?(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b")]
    private static partial Regex HexRuns();

    [GeneratedRegex(@"\d+(\.\d+)?")]
    private static partial Regex Numbers();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();
}
