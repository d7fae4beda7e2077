using System.Reflection;

namespace Pipeline.Tests.Support;

/// <summary>Any store interface whose every call fails while <see cref="Down"/> is set.</summary>
public class OutageProxy<T> : DispatchProxy where T : class
{
    private T _inner = null!;

    public volatile bool Down;

    public int Refused;

    public static (T Store, OutageProxy<T> Switch) Wrap(T inner)
    {
        var store = Create<T, OutageProxy<T>>();
        var proxy = (OutageProxy<T>)(object)store;
        proxy._inner = inner;
        return (store, proxy);
    }

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        if (Down)
        {
            Interlocked.Increment(ref Refused);
            throw new InvalidOperationException("store unreachable (test outage)");
        }
        try
        {
            return targetMethod!.Invoke(_inner, args);
        }
        catch (TargetInvocationException ex) when (ex.InnerException is not null)
        {
            throw ex.InnerException;
        }
    }
}
