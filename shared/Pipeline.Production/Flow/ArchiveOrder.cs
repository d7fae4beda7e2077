using Pipeline.Production.State;

namespace Pipeline.Production.Flow;

/// <summary>Whether each dataset's merged files reached the archive in (run, section) order, read from the catalog alone.</summary>
public static class ArchiveOrder
{
    /// <summary>
    /// The datasets (as "campaign/dataset") where a file archived later holds a (run, section) that sorts before one in
    /// a file archived earlier. <paramref name="archived"/> are merged files' catalog entries of one archive area.
    /// </summary>
    public static IReadOnlyList<string> DatasetsOutOfOrder(IEnumerable<CatalogEntry> archived) =>
        [.. archived
            .GroupBy(e => $"{e.Campaign}/{e.Dataset}", StringComparer.Ordinal)
            .Where(dataset => !InOrder(dataset.OrderBy(e => e.CreatedAt).ThenBy(e => e.Name, StringComparer.Ordinal)))
            .Select(dataset => dataset.Key)
            .Order(StringComparer.Ordinal)];

    private static bool InOrder(IEnumerable<CatalogEntry> files)
    {
        (int Run, int Section)? highest = null;
        foreach (var file in files.Where(f => f.Sources.Count > 0))
        {
            var first = file.Sources.Min(s => (s.Run, s.Section));
            if (highest is { } previous && first.CompareTo(previous) < 0)
            {
                return false;
            }
            highest = file.Sources.Max(s => (s.Run, s.Section));
        }
        return true;
    }
}
