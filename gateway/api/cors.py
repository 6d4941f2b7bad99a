"""Cross-origin access to the API for browser pages of the origins in `[server]
cors_origins` (a helpdesk, an agents' tool on another host).

Only the API and its event stream (`/v1/...`) answer them; provider webhooks, webchat,
survey pages and the console never do. A listed origin's preflight gets 204 with what may
be sent; its requests' answers (errors and the event stream too) name it in
Access-Control-Allow-Origin. An origin not listed gets no CORS headers, so the browser
keeps the answers from the page, and its preflights get 403 `origin_not_allowed`.
Requests without an Origin (servers, scripts) and same-origin ones are unaffected.

No Access-Control-Allow-Credentials: the API takes bearer tokens in the Authorization
header and event-stream tickets in the URL, which a page sends itself; it reads no
cookies (the console's session cookie is the console's alone) or other credentials a
browser adds on its own. Leaving credentials out means a page of another origin can only
act with a token it was given, never with something the browser holds for the user; and
`fetch(..., {credentials: "include"})` or `EventSource(url, {withCredentials: true})` are
refused by the browser rather than sending what the API never reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from gateway.api.errors import ApiError
from gateway.api.spec import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/v1/"
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE"
ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID, X-Request-Id"
EXPOSE_HEADERS = "X-Request-Id, Retry-After, Idempotent-Replayed"
# How long a browser may keep a preflight's answer (Chromium keeps it 2 hours at most).
MAX_AGE = "600"


def _under_api(request: web.BaseRequest) -> bool:
    return request.path.startswith(PREFIX)


def _vary(response: web.StreamResponse) -> None:
    given = response.headers.get("Vary", "")
    names = [n.strip() for n in given.split(",") if n.strip()]
    if "origin" not in (n.lower() for n in names):
        response.headers["Vary"] = ", ".join([*names, "Origin"])


class Cors:
    """The middleware (preflights) and the response hook (the headers of every answer,
    streams included: they are set just before the headers are sent)."""

    def __init__(self, origins: Iterable[str]) -> None:
        # Normalised by config.schema.normal_origin, as browsers send them.
        self.origins = frozenset(origins)

    def install(self, app: web.Application) -> None:
        """Answer preflights first of all (before any other middleware), and add the
        headers to every answer. Nothing at all when no origin is listed."""
        if not self.origins:
            return
        app.middlewares.insert(0, self.middleware)
        app.on_response_prepare.append(self.on_prepare)

    def allowed(self, request: web.BaseRequest) -> str | None:
        """The request's Origin when it is listed and the path is the API's."""
        origin = request.headers.get("Origin")
        if origin is None or not _under_api(request):
            return None
        return origin if origin in self.origins else None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        preflight = (
            request.method == "OPTIONS"
            and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers
            and _under_api(request)
        )
        if not preflight:
            return await handler(request)
        origin = self.allowed(request)
        if origin is None:
            err = ApiError(
                "this origin may not call the API; list it in [server] cors_origins",
                code="origin_not_allowed",
            )
            err.status = 403
            return error_response(err)
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": ALLOW_HEADERS,
                "Access-Control-Max-Age": MAX_AGE,
            },
        )

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        if not _under_api(request):
            return
        # The answer depends on Origin for every API request once CORS is on, so caches
        # keep one per origin (a listed origin must not be served an unlisted one's).
        _vary(response)
        origin = self.allowed(request)
        if origin is None or "Access-Control-Allow-Origin" in response.headers:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
