namespace Pipeline.Production.State;

/// <summary>
/// How long a campaign's reconstructions ran, as counts in log-spaced buckets: small and bounded however many files
/// the campaign has, and added to with atomic increments (no read-modify-write between the instances that add).
/// </summary>
public interface IRunTimeStore
{
    /// <summary>Adds files to buckets (<see cref="RunTimeHistogram.BucketOf"/>) of a campaign's run times.</summary>
    Task AddAsync(string campaign, IReadOnlyDictionary<int, long> files, CancellationToken cancellationToken);

    Task<RunTimeHistogram> GetAsync(string campaign, CancellationToken cancellationToken);
}

/// <summary>
/// A campaign's run times. Bucket <c>b</c> holds the runs of more than 2^((b-1)/4) and at most 2^(b/4) seconds (each
/// edge 19% above the last); bucket 0 holds a second or less. A quantile is read as its bucket's upper edge, so it is
/// never below the true one, and at most 19% above it.
/// </summary>
public sealed record RunTimeHistogram(IReadOnlyDictionary<int, long> Buckets)
{
    public const int BucketsPerDoubling = 4;

    /// <summary>The last bucket: about 12 days, longer than any job a batch system runs.</summary>
    public const int LastBucket = 20 * BucketsPerDoubling;

    public static RunTimeHistogram Empty { get; } = new(new Dictionary<int, long>());

    public static int BucketOf(double seconds) =>
        seconds <= 1 ? 0 : Math.Min(LastBucket, (int)Math.Ceiling(Math.Log2(seconds) * BucketsPerDoubling - 1e-9));

    public static double UpperEdge(int bucket) => Math.Pow(2, (double)bucket / BucketsPerDoubling);

    public long Files => Buckets.Values.Sum();

    /// <summary>The run time that <paramref name="fraction"/> of the files took at most (a bucket's upper edge), or null with no files.</summary>
    public double? Quantile(double fraction)
    {
        var files = Files;
        if (files == 0)
        {
            return null;
        }
        var wanted = Math.Max(1, (long)Math.Ceiling(fraction * files));
        long seen = 0;
        foreach (var (bucket, count) in Buckets.Where(b => b.Value > 0).OrderBy(b => b.Key))
        {
            seen += count;
            if (seen >= wanted)
            {
                return UpperEdge(bucket);
            }
        }
        return UpperEdge(Buckets.Keys.Max());
    }
}

/// <summary>The concern's store among the backend's, by name.</summary>
public static class RunTimeStoreAccess
{
    extension(StoreBackend backend)
    {
        public IRunTimeStore RunTimes => backend.Get<IRunTimeStore>();
    }
}
