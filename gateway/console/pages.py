"""How console pages are declared and served: a session is required on every page but
sign-in, a change needs the session's CSRF token, what a page shows and allows follows
the token's scopes (through the same operations as the HTTP API, run in process), and
every answer carries a strict Content-Security-Policy."""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from gateway.api.auth import Principal
from gateway.api.context import ApiContext
from gateway.api.errors import Forbidden, PayloadTooLarge, status_of
from gateway.api.spec import Operations, rate_limited
from gateway.console.session import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    LANGUAGE_COOKIE,
    Session,
    Sessions,
)
from gateway.console.texts import language_of, translator
from kernel.errors import DomainError, Malformed

log = logging.getLogger("gateway.console")

ROOT = "/console"
# Scripts only from the gateway itself, never inline; no framing; forms post only here.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# What a section of the console needs: the API operation whose scopes it follows.
Needs = tuple[str, str]

Handler = Callable[["View"], Awaitable[web.StreamResponse]]


@dataclass
class PageRoute:
    method: str
    path: str
    handler: Handler
    needs: Needs | None  # None: any signed-in token
    public: bool = False  # served without a session (sign-in)


class Pages:
    """The routes of one part of the console."""

    def __init__(self) -> None:
        self.routes: list[PageRoute] = []

    def get(
        self, path: str, *, needs: Needs | None = None, public: bool = False
    ) -> Callable[[Handler], Handler]:
        return self._add("GET", path, needs, public)

    def post(
        self, path: str, *, needs: Needs | None = None, public: bool = False
    ) -> Callable[[Handler], Handler]:
        return self._add("POST", path, needs, public)

    def _add(
        self, method: str, path: str, needs: Needs | None, public: bool
    ) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.routes.append(PageRoute(method, ROOT + path, fn, needs, public))
            return fn

        return register


@dataclass
class Section:
    """A page of the console's navigation."""

    key: str  # its word in texts, "nav.<key>"
    path: str
    needs: Needs | None


@dataclass
class Console:
    ctx: ApiContext
    api: Operations
    sessions: Sessions
    env: jinja2.Environment
    sections: list[Section] = field(default_factory=list)


@dataclass
class View:
    """What a page handler works with."""

    request: web.Request
    console: Console
    session: Session | None
    language: str
    _form: MultiDictProxy[Any] | None = None

    @property
    def ctx(self) -> ApiContext:
        return self.console.ctx

    @property
    def principal(self) -> Principal:
        if self.session is None:
            raise Forbidden("a session is required", code="no_session")
        return self.session.principal

    def param(self, name: str) -> str:
        return self.request.match_info[name]

    def allows(self, method: str, path: str) -> bool:
        return self.session is not None and self.console.api.allows(
            self.session.principal, method, path
        )

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Run an API operation as this session's token (same checks as over HTTP); the
        console's own request headers are not passed on, only ``headers``."""
        return await self.console.api.invoke(
            self.ctx,
            self.request,
            self.principal,
            method,
            path,
            params=dict(params or {}),
            query=dict(query or {}),
            body=None if body is None else dict(body),
            headers=dict(headers or {}),
        )

    async def form(self) -> MultiDictProxy[Any]:
        """The posted form. Files come within `[server] max_attachment_bytes` each (a
        reply's photo may be larger than `max_body_bytes`, which bounds the rest)."""
        if self._form is None:
            if self.request.content_type == "multipart/form-data":
                settings = self.ctx.settings.server
                self._form = await read_multipart(
                    self.request,
                    file_bytes=settings.max_attachment_bytes,
                    other_bytes=settings.max_body_bytes,
                )
            else:
                self._form = await self.request.post()
        return self._form

    def render(self, template: str, *, status: int = 200, **values: Any) -> web.Response:
        t = translator(self.language)
        page = self.console.env.get_template(template)
        html = page.render(
            t=t,
            lang=self.language,
            session=self.session,
            csrf=self.session.csrf if self.session else "",
            sections=[
                s
                for s in self.console.sections
                if self.session is not None and (s.needs is None or self.allows(*s.needs))
            ],
            current=self.request.path,
            allows=self.allows,
            root=ROOT,
            **values,
        )
        response = web.Response(text=html, status=status, content_type="text/html")
        response.headers.update(SECURITY_HEADERS)
        if self.request.query.get("lang") == self.language:
            response.set_cookie(
                LANGUAGE_COOKIE,
                self.language,
                max_age=365 * 86400,
                path=ROOT,
                httponly=True,
                samesite="Strict",
            )
        return response

    def fragment(self, template: str, **values: Any) -> web.Response:
        """A piece of a page (htmx swaps it in)."""
        return self.render(template, **values)

    def refusal(self, word: str, code: str) -> web.Response:
        message = translator(self.language)(word)
        return self.render("error.html", status=403, message=message, code=code, details=None)

    def error(self, exc: DomainError) -> web.Response:
        return self.render(
            "error.html",
            status=status_of(exc),
            message=exc.message,
            code=exc.code,
            details=exc.details,
        )


# Files one form may carry.
MAX_FILES = 20


async def read_multipart(
    request: web.Request, *, file_bytes: int, other_bytes: int
) -> MultiDictProxy[Any]:
    """A multipart form read part by part: each file within ``file_bytes``, at most
    MAX_FILES of them, every other field together within ``other_bytes``."""
    fields: MultiDict[Any] = MultiDict()
    others = files = 0
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name is None:
                raise Malformed("a form part without a name", code="bad_multipart")
            limit = file_bytes if part.filename is not None else other_bytes - others
            data = bytearray()
            while chunk := await part.read_chunk(64 * 1024):
                data += chunk
                if len(data) > limit:
                    what = "a file" if part.filename is not None else "the form"
                    raise PayloadTooLarge(
                        f"{what} is larger than {limit} bytes", code="form_too_large"
                    )
            if part.filename is None:
                others += len(data)
                fields.add(part.name, data.decode(part.get_charset("utf-8"), errors="replace"))
                continue
            files += 1
            if files > MAX_FILES:
                raise PayloadTooLarge(f"at most {MAX_FILES} files at once", code="form_too_large")
            fields.add(
                part.name,
                web.FileField(
                    part.name,
                    part.filename,
                    io.BytesIO(bytes(data)),
                    part.headers.get("Content-Type", "application/octet-stream"),
                    CIMultiDictProxy(CIMultiDict(part.headers)),
                ),
            )
    except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
        raise Malformed(f"the form cannot be read: {exc}", code="bad_multipart") from None
    return MultiDictProxy(fields)


def redirect(location: str) -> web.Response:
    """303 See Other: after a change, the browser loads the page it names (a reload does
    not post again)."""
    response = web.Response(status=303, headers={"Location": location})
    response.headers.update(SECURITY_HEADERS)
    return response


def signin_location(request: web.Request) -> str:
    here = request.path_qs if request.method == "GET" else ROOT
    return f"{ROOT}/signin?next={quote(here, safe='')}"


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: only a console path on this server (never elsewhere)."""
    if not value:
        return f"{ROOT}/inbox"
    parts = urlsplit(value)
    if (
        parts.scheme
        or parts.netloc
        or not (parts.path == ROOT or parts.path.startswith(ROOT + "/"))
        or "\\" in value
        or value.startswith("//")
    ):
        return f"{ROOT}/inbox"
    return value


def same_origin(request: web.Request) -> bool:
    """A change must come from a page of this server: an Origin header, when the browser
    sends one, names this host."""
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    parts = urlsplit(origin)
    return parts.netloc.lower() == request.host.lower()


def wrap(
    console: Console, route: PageRoute
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        language = language_of(request, LANGUAGE_COOKIE)
        session = await console.sessions.read(request.cookies.get(COOKIE))
        view = View(request, console, session, language)
        if not route.public and session is None:
            location = signin_location(request)
            if COOKIE in request.cookies:  # it was one: ended, expired or revoked
                location += "&ended=1"
            if request.headers.get("HX-Request"):  # htmx follows HX-Redirect
                response = web.Response(status=401, headers={"HX-Redirect": location})
            else:
                response = redirect(location)
            response.del_cookie(COOKIE, path=ROOT)
            return response
        if request.method == "POST" and not route.public:
            assert session is not None
            given = request.headers.get(CSRF_HEADER)
            if given is None and request.content_type in (
                "application/x-www-form-urlencoded",
                "multipart/form-data",
            ):
                try:
                    given = (await view.form()).get(CSRF_FIELD)
                except DomainError as exc:  # a form too large or not a form
                    return view.error(exc)
            if not same_origin(request) or not session.csrf_matches(
                given if isinstance(given, str) else None
            ):
                log.info("console: a change without the session's CSRF token was refused")
                return view.refusal("error.csrf", "csrf_failed")
        if route.needs is not None and not view.allows(*route.needs):
            return view.refusal("error.scope", "insufficient_scope")
        try:
            if session is not None:
                # One request of the token's API rate, whatever the page reads to answer.
                await rate_limited(console.ctx, session.principal)
            return await route.handler(view)
        except DomainError as exc:
            return view.error(exc)

    handle.__name__ = route.handler.__name__
    return handle
