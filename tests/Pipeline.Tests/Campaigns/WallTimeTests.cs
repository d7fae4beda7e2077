using Pipeline.Production.Campaigns;
using Pipeline.Production.State;

namespace Pipeline.Tests.Campaigns;

public sealed class When_a_campaigns_time_limit_follows_its_run_times
{
    private static readonly WallTimeOptions Options = new() { Quantile = 0.99, Factor = 1.5, FloorSeconds = 600, MinimumFiles = 20 };

    private static RunTimeHistogram Measured(params double[] seconds) =>
        new(seconds.GroupBy(RunTimeHistogram.BucketOf).ToDictionary(b => b.Key, b => (long)b.Count()));

    [Theory]
    [InlineData(0.2, 0)]
    [InlineData(1, 0)]
    [InlineData(1.1, 1)]
    [InlineData(2, 4)]
    [InlineData(3600, 48)]
    [InlineData(1e9, RunTimeHistogram.LastBucket)]
    public void Should_put_a_run_time_in_the_bucket_whose_upper_edge_is_the_first_at_or_above_it(double seconds, int bucket)
    {
        Assert.Equal(bucket, RunTimeHistogram.BucketOf(seconds));
        if (bucket is > 0 and < RunTimeHistogram.LastBucket)
        {
            Assert.InRange(seconds, RunTimeHistogram.UpperEdge(bucket - 1) * 1.000001, RunTimeHistogram.UpperEdge(bucket) * 1.000001);
        }
    }

    [Fact]
    public void Should_read_a_quantile_never_below_the_true_one_and_at_most_a_bucket_above()
    {
        var runs = Enumerable.Range(1, 1000).Select(i => 1000.0 + i).ToArray();
        var measured = Measured(runs);

        var p99 = measured.Quantile(0.99)!.Value;

        Assert.Equal(1000, measured.Files);
        Assert.InRange(p99, 1990, 1990 * 1.19);
        Assert.Null(RunTimeHistogram.Empty.Quantile(0.99));
    }

    [Fact]
    public void Should_keep_the_releases_limit_until_enough_files_are_measured()
    {
        var limit = WallTime.For(Measured([.. Enumerable.Repeat(100.0, 19)]), 21_600, Options);

        Assert.Equal(21_600, limit.Seconds);
        Assert.Equal("the release's limit: 19 of 20 files measured", limit.Basis);
    }

    [Fact]
    public void Should_give_the_measured_quantile_times_the_factor_between_the_floor_and_the_releases_limit()
    {
        var hourLong = Measured([.. Enumerable.Repeat(3000.0, 95), .. Enumerable.Repeat(3500.0, 5)]);
        var limit = WallTime.For(hourLong, 21_600, Options);
        Assert.InRange(limit.Seconds, 3500 * 1.5, 3500 * 1.5 * 1.19);
        Assert.StartsWith("p99 ", limit.Basis, StringComparison.Ordinal);

        Assert.Equal(600, WallTime.For(Measured([.. Enumerable.Repeat(30.0, 50)]), 21_600, Options).Seconds);
        var capped = WallTime.For(Measured([.. Enumerable.Repeat(20_000.0, 50)]), 21_600, Options);
        Assert.Equal(21_600, capped.Seconds);
        Assert.EndsWith("capped at the release's 21600s", capped.Basis, StringComparison.Ordinal);
    }
}
