namespace Pipeline.Tests.Support;

/// <summary>Waits on a condition, not on a clock: polls until it holds or a generous limit passes.</summary>
public static class Eventually
{
    public static async Task<T> Until<T>(Func<Task<T>> probe, Func<T, bool> done, TimeSpan limit, string what, Func<T, string>? describe = null)
    {
        var deadline = DateTime.UtcNow + limit;
        T last;
        do
        {
            last = await probe();
            if (done(last))
            {
                return last;
            }
            await Task.Delay(100);
        }
        while (DateTime.UtcNow < deadline);
        throw new TimeoutException($"Timed out after {limit.TotalSeconds}s waiting for {what}; last seen: {(describe is null ? last?.ToString() : describe(last))}");
    }
}
