namespace Pipeline.Infrastructure.Faults;

/// <summary>
/// Where the fault suite makes things go wrong on purpose, each off unless its environment variable is set:
/// a process dying at the worst moment (right after a file's saga is saved, before the messages its step publishes
/// have left: <c>PIPELINE_CRASH_AFTER_SAGA_SAVES=N</c> kills it with SIGKILL after its Nth save), and copies
/// corrupted at rest as a bad disk would (staged inputs, merged files waiting for the archive).
/// </summary>
public static class FaultInjection
{
    public const string SagaSavesVariable = "PIPELINE_CRASH_AFTER_SAGA_SAVES";

    private static readonly int CrashAfterSagaSaves =
        int.TryParse(Environment.GetEnvironmentVariable(SagaSavesVariable), System.Globalization.CultureInfo.InvariantCulture, out var saves) ? saves : 0;

    private static int _sagaSaves;

    public const string CorruptStagedVariable = "PIPELINE_CORRUPT_STAGED_EVERY";

    private static readonly int CorruptStagedEvery =
        int.TryParse(Environment.GetEnvironmentVariable(CorruptStagedVariable), System.Globalization.CultureInfo.InvariantCulture, out var every) ? every : 0;

    private static int _staged;

    /// <summary>What the stager logs for each copy it corrupts, for the fault suite to count.</summary>
    public const string CorruptedStagedMessage = "fault injection: corrupted the staged copy";

    /// <summary>
    /// With <c>PIPELINE_CORRUPT_STAGED_EVERY=N</c>, true for every Nth first-attempt staging of this process: the
    /// stager then flips a byte of the copy it has just verified, as a bad disk would at rest.
    /// </summary>
    public static bool ShouldCorruptStaged(int attempt) =>
        CorruptStagedEvery > 0 && attempt == 1 && Interlocked.Increment(ref _staged) % CorruptStagedEvery == 0;

    public const string CorruptMergedVariable = "PIPELINE_CORRUPT_MERGED_EVERY";

    private static readonly int CorruptMergedEvery =
        int.TryParse(Environment.GetEnvironmentVariable(CorruptMergedVariable), System.Globalization.CultureInfo.InvariantCulture, out var everyMerged) ? everyMerged : 0;

    private static int _merged;

    /// <summary>What the merger logs for each merged file it corrupts, for the fault suite to count.</summary>
    public const string CorruptedMergedMessage = "fault injection: corrupted the merged file";

    /// <summary>
    /// With <c>PIPELINE_CORRUPT_MERGED_EVERY=N</c>, true for every Nth merged file this process makes (never for one it
    /// re-makes): the merger then flips a byte of the file it has just written and committed, before the archive reads it.
    /// </summary>
    public static bool ShouldCorruptMerged() =>
        CorruptMergedEvery > 0 && Interlocked.Increment(ref _merged) % CorruptMergedEvery == 0;

    /// <summary>Flips the bits of one byte in the middle of a file, in place.</summary>
    public static void FlipByte(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        file.Position = file.Length / 2;
        var value = file.ReadByte();
        file.Position = file.Length / 2;
        file.WriteByte((byte)~value);
    }

    public static void SagaSaved()
    {
        if (CrashAfterSagaSaves > 0 && Interlocked.Increment(ref _sagaSaves) == CrashAfterSagaSaves)
        {
            Console.Error.WriteLine($"crash point: killing this process after saga save {CrashAfterSagaSaves}, before its messages are published");
            // On Linux this is kill(pid, SIGKILL): nothing after this line runs.
            System.Diagnostics.Process.GetCurrentProcess().Kill();
        }
    }
}
