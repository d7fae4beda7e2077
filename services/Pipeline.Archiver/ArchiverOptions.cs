using System.ComponentModel.DataAnnotations;

namespace Pipeline.Archiver;

public sealed class ArchiverOptions
{
    public const string Section = "Pipeline:Archiver";

    /// <summary>
    /// Archive requests this process handles at once. How many archive writers run across every instance is
    /// limited separately, by <c>Pipeline:Flow:Movers</c>: adding instances never adds writers.
    /// </summary>
    [Range(1, 64)]
    public int Writers { get; set; } = 2;
}
