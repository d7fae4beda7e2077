using System.Net;
using System.Net.Http.Headers;
using Pipeline.Infrastructure.Checksums;
using Polly;
using Polly.Retry;

namespace Pipeline.Infrastructure.Storage.Http;

/// <summary>A remote file as its server describes it: its size and the Adler-32 the server computed, if it gave one.</summary>
public sealed record RemoteFile(long Size, string? Adler32);

/// <summary>A storage server refused or failed a request; the message names the request, never a credential.</summary>
public sealed class RemoteStorageException(string message, HttpStatusCode? status = null, Exception? inner = null) : IOException(message, inner)
{
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>The bytes the server holds are not the bytes sent or expected: the copy is not to be trusted.</summary>
public sealed class RemoteChecksumMismatchException(string message) : IOException(message)
{
    /// <summary>
    /// A download is trusted when what arrived matches the server's checksum and, when given, the catalog's: a server
    /// may recompute its checksum from bytes corrupted on its disk, so only the catalog's proves them.
    /// </summary>
    public static void ThrowUnlessSame(string file, string received, string reported, string? catalogued)
    {
        if (!Adler32Checksum.Same(reported, received))
        {
            throw new RemoteChecksumMismatchException($"{file}: received adler32 {received}, the server reports {reported}.");
        }
        if (catalogued is not null && !Adler32Checksum.Same(catalogued, received))
        {
            throw new RemoteChecksumMismatchException($"{file}: received adler32 {received}, the catalog has {catalogued}.");
        }
    }
}

/// <summary>
/// Files on an HTTP/WebDAV storage server (XRootD's HTTP interface, dCache, EOS, StoRM), streamed both ways.
/// An upload goes to a temporary name beside its target, is compared with the Adler-32 the server reports for it
/// (RFC 3230 <c>Want-Digest</c>/<c>Digest</c>), and only then is moved to its final name, so nothing half-written
/// or corrupted ever appears under a real name. Written here rather than taken from a library: no WebDAV client on
/// the package feed streams uploads with the digest check and the move, and these are five plain HTTP methods.
/// </summary>
public sealed class WebDavClient(HttpClient http)
{
    /// <summary>
    /// Requests that can be sent again safely (HEAD, DELETE, MKCOL, MOVE) are retried on a lost connection and on
    /// a 5xx, waiting as the server's Retry-After says when it says; a 4xx is an answer and is never retried. An
    /// upload is not retried here: its source is a stream, so the caller sends the file again.
    /// </summary>
    private static readonly ResiliencePipeline<HttpResponseMessage> Retrying = new ResiliencePipelineBuilder<HttpResponseMessage>()
        .AddRetry(new RetryStrategyOptions<HttpResponseMessage>
        {
            MaxRetryAttempts = 4,
            Delay = TimeSpan.FromMilliseconds(200),
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            ShouldHandle = new PredicateBuilder<HttpResponseMessage>()
                .Handle<HttpRequestException>()
                .HandleResult(response => (int)response.StatusCode >= 500),
            DelayGenerator = arguments => ValueTask.FromResult(RetryAfter(arguments.Outcome.Result)),
            OnRetry = arguments =>
            {
                arguments.Outcome.Result?.Dispose();
                return default;
            },
        })
        .Build();

    public const string TemporaryMarker = ".part-";
    private const string DigestAlgorithm = "adler32";
    private static readonly HttpMethod Move = new("MOVE");
    private static readonly HttpMethod MakeCollection = new("MKCOL");
    private static readonly HttpMethod FindProperties = new("PROPFIND");

    private const string PropertiesWanted =
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>";

    /// <summary>Refuses a URL that carries a credential: credentials live in files and settings, never in URLs.</summary>
    public static Uri CheckUrl(Uri url)
    {
        if (!url.IsAbsoluteUri || url.Scheme is not ("http" or "https" or "davs" or "dav"))
        {
            throw new ArgumentException($"'{url.GetLeftPart(UriPartial.Authority)}' is not an http, https, dav or davs URL.", nameof(url));
        }
        StorageArea.WithoutCredentials(url);
        // davs:// and dav:// are the grid's names for WebDAV over https and http.
        return url.Scheme switch
        {
            "davs" => new UriBuilder(url) { Scheme = "https", Port = url.IsDefaultPort ? 443 : url.Port }.Uri,
            "dav" => new UriBuilder(url) { Scheme = "http", Port = url.IsDefaultPort ? 80 : url.Port }.Uri,
            _ => url,
        };
    }

    /// <summary>
    /// Streams <paramref name="source"/> to <paramref name="target"/> and returns its size and Adler-32, computed while
    /// the bytes went out and matched by the server's own. On any failure the temporary copy is removed and the final
    /// name is untouched. The length, when the stream cannot tell it, must be given: servers such as XRootD's HTTP
    /// interface do not take chunked uploads.
    /// </summary>
    public async Task<RemoteFile> UploadAsync(Stream source, Uri target, CancellationToken cancellationToken, long? length = null)
    {
        length ??= source.CanSeek ? source.Length - source.Position : null;
        await EnsureCollectionAsync(Parent(target), cancellationToken);
        var temporary = new Uri(target.AbsoluteUri + TemporaryMarker + Guid.NewGuid().ToString("N"));
        try
        {
            await using var counted = new ChecksummingStream(source, leaveOpen: true);
            using (var put = new HttpRequestMessage(HttpMethod.Put, temporary) { Content = new StreamContent(counted, 1 << 20) })
            {
                put.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
                put.Content.Headers.ContentLength = length;
                using var response = await http.SendAsync(put, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
                Require(response, "PUT", temporary);
            }
            var sent = Adler32Checksum.Format(counted.Adler32);
            var stored = await StatAsync(temporary, cancellationToken)
                ?? throw new RemoteStorageException($"PUT {Describe(temporary)} succeeded but the file is not there.");
            if (stored.Size != counted.Length)
            {
                throw new RemoteChecksumMismatchException($"{Describe(target)}: {counted.Length} bytes sent, the server holds {stored.Size}.");
            }
            if (stored.Adler32 is null)
            {
                throw new RemoteStorageException($"{Describe(target)}: the server reports no adler32 digest, so the upload cannot be verified.");
            }
            if (!Adler32Checksum.Same(stored.Adler32, sent))
            {
                throw new RemoteChecksumMismatchException($"{Describe(target)}: sent adler32 {sent}, the server computed {stored.Adler32}.");
            }
            using (var moved = await SendAgainAsync(() =>
                   {
                       var move = new HttpRequestMessage(Move, temporary);
                       move.Headers.Add("Destination", target.AbsoluteUri);
                       move.Headers.Add("Overwrite", "T");
                       return move;
                   }, cancellationToken))
            {
                // The file is trusted where it is asked for, under its final name: a MOVE sent again after its answer
                // was lost finds its source gone, and a server that takes the Destination header literally (XRootD's
                // HTTP interface 5.5 does not unescape it) puts a name that needs escaping somewhere else.
                var placed = await StatAsync(target, cancellationToken);
                if (placed is not { Adler32: { } digest } || placed.Size != counted.Length || !Adler32Checksum.Same(digest, sent))
                {
                    Require(moved, "MOVE", temporary);
                    throw new RemoteStorageException(
                        $"MOVE to {Describe(target)} answered {(int)moved.StatusCode} but the file is not there: the server did not honour the Destination " +
                        "(one that does not unescape it cannot take names with spaces or other characters that need escaping).");
                }
                if (!moved.IsSuccessStatusCode)
                {
                    await DeleteQuietlyAsync(temporary);
                }
            }
            return new RemoteFile(counted.Length, sent);
        }
        catch
        {
            await DeleteQuietlyAsync(temporary);
            throw;
        }
    }

    /// <summary>
    /// Streams <paramref name="source"/> into <paramref name="destination"/>, computing its Adler-32, and compares
    /// it with the digest the server reports and with <paramref name="expectedAdler32"/> (the catalog's), when
    /// given: a server may recompute its digest from bytes corrupted on its disk, so only the catalog's proves them.
    /// </summary>
    public async Task<string> DownloadAsync(Uri source, Stream destination, string? expectedAdler32, CancellationToken cancellationToken)
    {
        using var get = new HttpRequestMessage(HttpMethod.Get, source);
        get.Headers.Add("Want-Digest", DigestAlgorithm);
        using var response = await http.SendAsync(get, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        Require(response, "GET", source);
        var reported = DigestOf(response);
        await using var counted = new ChecksummingStream(destination, leaveOpen: true);
        await using (var body = await response.Content.ReadAsStreamAsync(cancellationToken))
        {
            await body.CopyToAsync(counted, 1 << 20, cancellationToken);
        }
        var received = Adler32Checksum.Format(counted.Adler32);
        reported ??= (await StatAsync(source, cancellationToken))?.Adler32;
        if (reported is null)
        {
            throw new RemoteStorageException($"{Describe(source)}: the server reports no adler32 digest, so the download cannot be verified.");
        }
        RemoteChecksumMismatchException.ThrowUnlessSame(Describe(source), received, reported, expectedAdler32);
        return received;
    }

    /// <summary>
    /// Opens a file for reading as the bytes arrive (nothing is buffered whole); the server's digest, when it sent
    /// one, comes with it. Throws <see cref="FileNotFoundException"/> when there is no such file.
    /// </summary>
    public async Task<(Stream Body, long? Length, string? ServerAdler32)> OpenReadAsync(Uri source, CancellationToken cancellationToken)
    {
        var response = await SendAgainAsync(() =>
        {
            var get = new HttpRequestMessage(HttpMethod.Get, source);
            get.Headers.Add("Want-Digest", DigestAlgorithm);
            return get;
        }, cancellationToken, HttpCompletionOption.ResponseHeadersRead);
        try
        {
            if (response.StatusCode == HttpStatusCode.NotFound)
            {
                throw new FileNotFoundException($"{Describe(source)} is not on the server.");
            }
            Require(response, "GET", source);
            var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            return (new ResponseStream(body, response), response.Content.Headers.ContentLength, DigestOf(response));
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    /// <summary>Moves a file to another name on the same server (WebDAV MOVE), making the target's collection first.</summary>
    public async Task MoveAsync(Uri from, Uri to, CancellationToken cancellationToken)
    {
        await EnsureCollectionAsync(Parent(to), cancellationToken);
        using var moved = await SendAgainAsync(() =>
        {
            var move = new HttpRequestMessage(Move, from);
            move.Headers.Add("Destination", to.AbsoluteUri);
            move.Headers.Add("Overwrite", "F");
            return move;
        }, cancellationToken);
        if (moved.StatusCode == HttpStatusCode.NotFound)
        {
            throw new FileNotFoundException($"{Describe(from)} is not on the server.");
        }
        // A MOVE sent again after its answer was lost finds its source gone and its target there.
        if (!moved.IsSuccessStatusCode && !(await StatAsync(from, cancellationToken) is null && await StatAsync(to, cancellationToken) is not null))
        {
            Require(moved, "MOVE", from);
        }
    }

    /// <summary>
    /// The members of a collection, one level (PROPFIND, Depth: 1), read from the answer as it arrives, so a
    /// collection of a million files is never held whole.
    /// </summary>
    public async IAsyncEnumerable<RemoteEntry> ListAsync(Uri collection, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var folder = collection.AbsoluteUri.EndsWith('/') ? collection : new Uri(collection.AbsoluteUri + "/");
        using var response = await SendAgainAsync(() =>
        {
            var find = new HttpRequestMessage(FindProperties, folder);
            find.Headers.Add("Depth", "1");
            find.Content = new StringContent(PropertiesWanted, System.Text.Encoding.UTF8, "application/xml");
            return find;
        }, cancellationToken, HttpCompletionOption.ResponseHeadersRead);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            yield break;
        }
        Require(response, "PROPFIND", folder);
        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
        await foreach (var entry in WebDavListing.ReadAsync(body, cancellationToken))
        {
            var path = Uri.UnescapeDataString(entry.Href.StartsWith('/') ? entry.Href : new Uri(entry.Href).AbsolutePath);
            if (path.TrimEnd('/') == Uri.UnescapeDataString(folder.AbsolutePath).TrimEnd('/'))
            {
                continue;
            }
            yield return entry with { Href = path.TrimEnd('/')[(path.TrimEnd('/').LastIndexOf('/') + 1)..] };
        }
    }

    /// <summary>The file's size and server-side Adler-32, or null when there is no such file.</summary>
    public async Task<RemoteFile?> StatAsync(Uri file, CancellationToken cancellationToken)
    {
        using var response = await SendAgainAsync(() =>
        {
            var head = new HttpRequestMessage(HttpMethod.Head, file);
            head.Headers.Add("Want-Digest", DigestAlgorithm);
            return head;
        }, cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
        Require(response, "HEAD", file);
        return new RemoteFile(response.Content.Headers.ContentLength ?? -1, DigestOf(response));
    }

    /// <summary>Removes a file; false when it was not there.</summary>
    public async Task<bool> DeleteAsync(Uri file, CancellationToken cancellationToken)
    {
        using var response = await SendAgainAsync(() => new HttpRequestMessage(HttpMethod.Delete, file), cancellationToken);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return false;
        }
        Require(response, "DELETE", file);
        return true;
    }

    /// <summary>Makes a collection and any missing parents (MKCOL makes one level at a time).</summary>
    public async Task EnsureCollectionAsync(Uri collection, CancellationToken cancellationToken)
    {
        var missing = new Stack<Uri>();
        for (var at = collection; at.AbsolutePath.Length > 1; at = Parent(at))
        {
            if (await ExistsAsync(at, cancellationToken))
            {
                break;
            }
            missing.Push(at);
        }
        while (missing.TryPop(out var next))
        {
            using var response = await SendAgainAsync(() => new HttpRequestMessage(MakeCollection, next), cancellationToken);
            // 405: it exists already (made meanwhile by another writer).
            if (response.StatusCode != HttpStatusCode.MethodNotAllowed)
            {
                Require(response, "MKCOL", next);
            }
        }
    }

    private async Task<bool> ExistsAsync(Uri collection, CancellationToken cancellationToken)
    {
        using var response = await SendAgainAsync(() => new HttpRequestMessage(HttpMethod.Head, collection), cancellationToken);
        return response.IsSuccessStatusCode;
    }

    // A request message can be sent once only: each attempt makes its own.
    private async Task<HttpResponseMessage> SendAgainAsync(
        Func<HttpRequestMessage> request, CancellationToken cancellationToken, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead) =>
        await Retrying.ExecuteAsync(async token =>
        {
            using var message = request();
            return await http.SendAsync(message, completion, token);
        }, cancellationToken);

    private static TimeSpan? RetryAfter(HttpResponseMessage? response) => response?.Headers.RetryAfter switch
    {
        { Delta: { } delta } => delta <= TimeSpan.FromMinutes(5) ? delta : TimeSpan.FromMinutes(5),
        { Date: { } date } => date - DateTimeOffset.UtcNow is var wait && wait > TimeSpan.Zero ? (wait <= TimeSpan.FromMinutes(5) ? wait : TimeSpan.FromMinutes(5)) : TimeSpan.Zero,
        _ => null,
    };

    private async Task DeleteQuietlyAsync(Uri file)
    {
        try
        {
            // Not the caller's token: a cancelled upload still removes what it left.
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await DeleteAsync(file, timeout.Token);
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
        {
            // The temporary name is never read as a file; a sweep of abandoned temporary files removes it later.
        }
    }

    private static string? DigestOf(HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("Digest", out var values))
        {
            return null;
        }
        foreach (var digest in values.SelectMany(v => v.Split(',')))
        {
            var parts = digest.Trim().Split('=', 2);
            // Some servers leave out leading zeros.
            var value = parts.Length == 2 ? parts[1].Trim().PadLeft(8, '0').ToLowerInvariant() : "";
            if (parts[0].Equals(DigestAlgorithm, StringComparison.OrdinalIgnoreCase) && Adler32Checksum.IsWellFormed(value))
            {
                return value;
            }
        }
        return null;
    }

    private static void Require(HttpResponseMessage response, string method, Uri url)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw new RemoteStorageException($"{method} {Describe(url)} answered {(int)response.StatusCode} {response.ReasonPhrase}.", response.StatusCode);
        }
    }

    private static Uri Parent(Uri url)
    {
        var path = url.AbsolutePath.TrimEnd('/');
        var cut = path.LastIndexOf('/');
        return new UriBuilder(url) { Path = cut <= 0 ? "/" : path[..(cut + 1)], Query = "" }.Uri;
    }

    // The path only: a query string may carry a signed token.
    private static string Describe(Uri url) => url.GetLeftPart(UriPartial.Path);
}
