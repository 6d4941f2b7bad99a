"""Signing in with an API token, signing out, and the console's own event stream."""

from __future__ import annotations

import json
import secrets

from aiohttp import web

from gateway.api.auth import ANY_SCOPE
from gateway.api.errors import Unauthorized, status_of
from gateway.api.events import serve_stream
from gateway.console.pages import ROOT, Pages, View, redirect, safe_next, same_origin
from gateway.console.session import COOKIE, LIFETIME_SECONDS, SIGNIN_COOKIE
from gateway.console.texts import translator
from gateway.events import type_matcher
from kernel.errors import DomainError
from kernel.events import Event

pages = Pages()
MAX_TOKEN = 512


def _set_cookie(response: web.Response, view: View, name: str, value: str, max_age: int) -> None:
    # Secure when the browser reaches the gateway over https (directly, or through a
    # proxy named by [server] public_url).
    secure = view.request.secure or view.ctx.settings.server.public_url.startswith("https://")
    response.set_cookie(
        name, value, max_age=max_age, path=ROOT, httponly=True, samesite="Strict", secure=secure
    )


def _signin_page(view: View, *, status: int = 200, message: str = "") -> web.Response:
    nonce = secrets.token_urlsafe(24)
    response = view.render(
        "signin.html",
        status=status,
        message=message,
        next=safe_next(view.request.query.get("next")),
        signin_csrf=nonce,
    )
    _set_cookie(response, view, SIGNIN_COOKIE, nonce, 3600)
    return response


@pages.get("", public=True)
async def home(view: View) -> web.StreamResponse:
    return redirect(f"{ROOT}/inbox" if view.session else f"{ROOT}/signin")


@pages.get("/signin", public=True)
async def signin_form(view: View) -> web.StreamResponse:
    if view.session is not None:
        return redirect(safe_next(view.request.query.get("next")))
    ended = view.request.query.get("ended") == "1"
    return _signin_page(view, message=translator(view.language)("signin.ended") if ended else "")


@pages.post("/signin", public=True)
async def signin(view: View) -> web.StreamResponse:
    t = translator(view.language)
    request = view.request
    form = await view.form()
    nonce = request.cookies.get(SIGNIN_COOKIE)
    given = form.get("csrf")
    if (
        not same_origin(request)
        or not nonce
        or not isinstance(given, str)
        or not secrets.compare_digest(nonce.encode(), given.encode())
    ):
        return _signin_page(view, status=403, message=t("signin.expired_form"))
    token = form.get("token")
    token = token.strip() if isinstance(token, str) else ""
    if not token or len(token) > MAX_TOKEN or not token.isascii() or not token.isprintable():
        return _signin_page(view, status=401, message=t("signin.invalid"))
    try:
        principal = await view.ctx.logins.authenticate(request, token=token)
    except Unauthorized:
        return _signin_page(view, status=401, message=t("signin.invalid"))
    except DomainError as exc:  # too many failed sign-ins from here: 429
        return _signin_page(view, status=status_of(exc), message=exc.message)
    if not principal.scopes & ANY_SCOPE:
        return _signin_page(view, status=403, message=t("signin.scope"))
    cookie, _csrf = view.console.sessions.open_for(token)
    response = redirect(safe_next(str(form.get("next") or "")))
    _set_cookie(response, view, COOKIE, cookie, LIFETIME_SECONDS)
    response.del_cookie(SIGNIN_COOKIE, path=ROOT)
    return response


@pages.post("/signout")
async def signout(view: View) -> web.StreamResponse:
    response = redirect(f"{ROOT}/signin")
    response.del_cookie(COOKIE, path=ROOT)
    return response


# What the console's pages listen for: an event's kind (the part of its type before the
# dot) and the conversation it concerns, never its data (pages fetch what they show).
def _console_event(event: Event) -> bytes:
    kind = event.type.split(".", 1)[0]
    about = {"type": event.type, "conversation_id": event.conversation_id}
    return f"id: {event.id}\nevent: {kind}\ndata: {json.dumps(about)}\n\n".encode()


@pages.get("/events")
async def events(view: View) -> web.StreamResponse:
    """The console's live updates: the event stream as this session's token, each event
    named by its kind (`conversation`, `message`, `agent`, `channel`, ...)."""
    ctx = view.ctx
    raw = view.request.headers.get("Last-Event-ID", "")
    last = int(raw) if raw.isascii() and raw.isdigit() else ctx.bus.last_seq
    conversation_id = view.request.query.get("conversation_id") or None
    return await serve_stream(
        view.request,
        ctx,
        view.principal,
        last,
        type_matcher(None),
        conversation_id,
        encoder=_console_event,
    )
