namespace Pipeline.EventFormat;

/// <summary>One event: where it was taken (run, section), its number, the triggers that fired, its data.</summary>
public readonly record struct EventRecord(int Run, int Section, long Event, uint Trigger, ReadOnlyMemory<byte> Payload)
{
    public EventKey Key => new(Run, Section, Event);
}

/// <summary>The order events are merged in: run, then section, then event number.</summary>
public readonly record struct EventKey(int Run, int Section, long Event) : IComparable<EventKey>
{
    public int CompareTo(EventKey other)
    {
        var byRun = Run.CompareTo(other.Run);
        if (byRun != 0)
        {
            return byRun;
        }
        var bySection = Section.CompareTo(other.Section);
        return bySection != 0 ? bySection : Event.CompareTo(other.Event);
    }

    public static bool operator <(EventKey left, EventKey right) => left.CompareTo(right) < 0;
    public static bool operator >(EventKey left, EventKey right) => left.CompareTo(right) > 0;
    public static bool operator <=(EventKey left, EventKey right) => left.CompareTo(right) <= 0;
    public static bool operator >=(EventKey left, EventKey right) => left.CompareTo(right) >= 0;
}
