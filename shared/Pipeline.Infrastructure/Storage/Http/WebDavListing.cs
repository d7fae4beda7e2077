using System.Globalization;
using System.Runtime.CompilerServices;
using System.Xml;

namespace Pipeline.Infrastructure.Storage.Http;

/// <summary>A member of a WebDAV collection: its name (or, while parsed, its href), size, last change and whether it is a collection.</summary>
public sealed record RemoteEntry(string Href, long Size, DateTimeOffset Modified, bool IsCollection);

/// <summary>Reads a PROPFIND multistatus answer one response at a time, as it arrives.</summary>
internal static class WebDavListing
{
    private const string Dav = "DAV:";

    public static async IAsyncEnumerable<RemoteEntry> ReadAsync(Stream body, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var settings = new XmlReaderSettings { Async = true, DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null, IgnoreWhitespace = true };
        using var reader = XmlReader.Create(body, settings);
        string? href = null;
        long size = 0;
        var modified = DateTimeOffset.MinValue;
        var collection = false;
        while (await reader.ReadAsync())
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (reader.NamespaceURI != Dav)
            {
                continue;
            }
            if (reader.NodeType == XmlNodeType.Element)
            {
                switch (reader.LocalName)
                {
                    case "response":
                        (href, size, modified, collection) = (null, 0, DateTimeOffset.MinValue, false);
                        break;
                    case "href":
                        href = (await reader.ReadElementContentAsStringAsync()).Trim();
                        break;
                    case "collection":
                        collection = true;
                        break;
                    case "getcontentlength":
                        long.TryParse(await reader.ReadElementContentAsStringAsync(), NumberStyles.None, CultureInfo.InvariantCulture, out size);
                        break;
                    case "getlastmodified":
                        DateTimeOffset.TryParse(await reader.ReadElementContentAsStringAsync(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out modified);
                        break;
                }
            }
            else if (reader.NodeType == XmlNodeType.EndElement && reader.LocalName == "response" && href is not null)
            {
                yield return new RemoteEntry(href, size, modified, collection);
            }
        }
    }
}

/// <summary>A response body that disposes its response (and so returns the connection) when it is disposed.</summary>
internal sealed class ResponseStream(Stream body, HttpResponseMessage response) : ForwardReadStream(body)
{
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => Inner.ReadAsync(buffer, cancellationToken);

    public override long Length => response.Content.Headers.ContentLength ?? throw new NotSupportedException("The server did not give the length.");

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
        {
            response.Dispose();
        }
    }
}
