using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Pipeline.Api.Security;

namespace Pipeline.Api;

/// <summary>
/// Bounds every request body at <see cref="ApiSecurityOptions.MaxRequestBodyBytes"/>: a body announced as larger
/// gets 413 with problem details before a byte of it is read; one that turns out larger while it is read (no
/// length given) is cut off there by the server, and its 413 gets the same problem body from the status-code pages.
/// </summary>
public static class RequestBodyLimit
{
    public static WebApplication UseRequestBodyLimit(this WebApplication app)
    {
        var limit = app.Services.GetRequiredService<IOptions<ApiSecurityOptions>>().Value.MaxRequestBodyBytes;
        app.Use(async (context, next) =>
        {
            if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } feature)
            {
                feature.MaxRequestBodySize = limit;
            }
            if (context.Request.ContentLength > limit)
            {
                await Results.Problem(
                    statusCode: StatusCodes.Status413PayloadTooLarge,
                    title: "Request body too large",
                    detail: $"The body is {context.Request.ContentLength} bytes; this API takes at most {limit}.").ExecuteAsync(context);
                return;
            }
            await next(context);
        });
        return app;
    }
}
