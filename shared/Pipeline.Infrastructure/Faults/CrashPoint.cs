namespace Pipeline.Infrastructure.Faults;

/// <summary>
/// A place where the fault suite can make a process die at the worst moment: right after a file's saga is saved,
/// before the messages its step publishes have left. Off unless the process is started with
/// <c>PIPELINE_CRASH_AFTER_SAGA_SAVES=N</c>: it then kills itself (SIGKILL, no shutdown code) after its Nth save.
/// </summary>
public static class CrashPoint
{
    public const string SagaSavesVariable = "PIPELINE_CRASH_AFTER_SAGA_SAVES";

    private static readonly int CrashAfterSagaSaves =
        int.TryParse(Environment.GetEnvironmentVariable(SagaSavesVariable), System.Globalization.CultureInfo.InvariantCulture, out var saves) ? saves : 0;

    private static int _sagaSaves;

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
