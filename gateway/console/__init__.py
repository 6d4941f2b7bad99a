"""The console at /console: pages for admins and agents, rendered by the server
(Jinja2, autoescaped), kept live by htmx over the event stream, figures drawn by
Chart.js; every asset ships inside the package (`static/vendor/`)."""

from __future__ import annotations

import secrets
from pathlib import Path

import jinja2
from aiohttp import web

from gateway.api.context import ApiContext
from gateway.api.spec import Operations
from gateway.console import agents, channels, conversation, figures, inbox, signin, webhooks
from gateway.console.pages import ROOT, SECURITY_HEADERS, Console, Section, wrap
from gateway.console.session import Sessions
from gateway.console.shown import who

STATIC = Path(__file__).parent / "static"

# Every part of the console (each module's `pages`).
PARTS = (
    signin.pages,
    inbox.pages,
    conversation.pages,
    channels.pages,
    agents.pages,
    webhooks.pages,
    figures.pages,
)

# The navigation, in order: each section shows when the token may read what it shows.
SECTIONS = (
    Section("inbox", f"{ROOT}/inbox", inbox.LIST),
    Section("channels", f"{ROOT}/channels", channels.LIST),
    Section("agents", f"{ROOT}/agents", agents.LIST),
    Section("webhooks", f"{ROOT}/webhooks", webhooks.LIST),
    Section("figures", f"{ROOT}/figures", figures.STATS),
)


def install(app: web.Application, ctx: ApiContext, api: Operations) -> None:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,  # every value is text unless a template says otherwise
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["who"] = who
    env.globals["new_key"] = lambda: secrets.token_urlsafe(18)
    console = Console(ctx, api, Sessions(ctx.auth, ctx.console_keys), env, list(SECTIONS))
    for part in PARTS:
        for route in part.routes:
            app.router.add_route(route.method, route.path, wrap(console, route))
    app.router.add_get(f"{ROOT}/static/{{name:.+}}", _static)


async def _static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = (STATIC / name).resolve()
    if not path.is_file() or STATIC.resolve() not in path.parents:
        raise web.HTTPNotFound()
    response = web.FileResponse(path)
    response.headers.update(SECURITY_HEADERS)
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
