namespace Pipeline.Infrastructure.Hosting;

/// <summary>The one way a stage waits to be let in (room in an area, an archive writer): it asks, and asks again every poll.</summary>
public static class Admission
{
    /// <summary>
    /// Returns once <paramref name="admitted"/> answers true, asking every <paramref name="poll"/>; tells
    /// <paramref name="refused"/> once, at the first refusal (to log that it waits). Returns how long it waited.
    /// </summary>
    public static async Task<TimeSpan> WaitAsync(Func<CancellationToken, Task<bool>> admitted, TimeSpan poll, TimeProvider time, Action refused,
        CancellationToken cancellationToken)
    {
        var since = time.GetTimestamp();
        if (await admitted(cancellationToken))
        {
            return TimeSpan.Zero;
        }
        refused();
        do
        {
            await Task.Delay(poll, time, cancellationToken);
        }
        while (!await admitted(cancellationToken));
        return time.GetElapsedTime(since);
    }
}
