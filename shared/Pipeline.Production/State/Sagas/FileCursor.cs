using System.Buffers.Text;
using System.Globalization;
using System.Text;

namespace Pipeline.Production.State;

/// <summary>
/// The paging cursor of file listings: the (run, name) of the last file on a page, opaque to clients and
/// the same for every store, so a page after it is a range query on the (run, name) order.
/// </summary>
public static class FileCursor
{
    public static string Encode(int run, string name) =>
        Base64Url.EncodeToString(Encoding.UTF8.GetBytes($"{run.ToString(CultureInfo.InvariantCulture)}/{name}"));

    /// <summary>Decodes a cursor; throws <see cref="FormatException"/> for one no store issued.</summary>
    public static (int Run, string Name) Decode(string cursor)
    {
        try
        {
            var text = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(cursor));
            var slash = text.IndexOf('/', StringComparison.Ordinal);
            if (slash > 0 && int.TryParse(text.AsSpan(0, slash), NumberStyles.Integer, CultureInfo.InvariantCulture, out var run))
            {
                return (run, text[(slash + 1)..]);
            }
        }
        catch (FormatException)
        {
        }
        throw new FormatException("The paging cursor is not one this service issued.");
    }
}
