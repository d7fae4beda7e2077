using System.ComponentModel.DataAnnotations;

namespace Pipeline.Archiver;

public sealed class ArchiverOptions
{
    public const string Section = "Pipeline:Archiver";

    /// <summary>Merged files written to the archive at once by this process ("movers": tape drives are few).</summary>
    [Range(1, 64)]
    public int Writers { get; set; } = 2;
}
