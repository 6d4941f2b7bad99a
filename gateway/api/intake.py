"""The provider side: webhooks, the webchat socket, widget.js and the demo page."""

from __future__ import annotations

import html
from importlib import resources

from aiohttp import web

from connectors.base import SocketConnector, WebhookConnector
from gateway.api.spec import Operations, Req
from kernel.errors import NotFound

TAG = "channels"
operations = Operations()


def _static(name: str) -> str:
    return resources.files("connectors.webchat").joinpath("static", name).read_text("utf-8")


@operations.add(
    "GET",
    "/webhooks/{channel_id}",
    summary="Provider webhook verification (e.g. Facebook's hub.challenge)",
    tag=TAG,
    scopes=None,
    raw=True,
    errors=(400, 403, 404),
)
async def webhook_get(req: Req) -> web.StreamResponse:
    return await _webhook(req)


@operations.add(
    "POST",
    "/webhooks/{channel_id}",
    summary="Provider webhook events (signature-checked by the channel)",
    tag=TAG,
    scopes=None,
    raw=True,
    errors=(400, 401, 404, 413, 503),
)
async def webhook_post(req: Req) -> web.StreamResponse:
    return await _webhook(req)


async def _webhook(req: Req) -> web.StreamResponse:
    connector = req.ctx.channels.get(req.param("channel_id"))
    if not isinstance(connector, WebhookConnector):
        raise NotFound(f"no webhook channel {req.param('channel_id')}", code="channel_not_found")
    return await connector.handle_webhook(req.request)


@operations.add(
    "GET",
    "/webchat/{channel_id}/ws",
    summary="Webchat WebSocket (JSON text frames; see the webchat protocol)",
    tag=TAG,
    scopes=None,
    raw=True,
    errors=(400, 403, 404, 429, 503),
)
async def webchat_socket(req: Req) -> web.StreamResponse:
    connector = req.ctx.channels.get(req.param("channel_id"))
    if not isinstance(connector, SocketConnector):
        raise NotFound(f"no webchat channel {req.param('channel_id')}", code="channel_not_found")
    return await connector.handle_socket(req.request)


@operations.add(
    "GET",
    "/webchat/widget.js",
    summary="The embeddable webchat widget",
    tag=TAG,
    scopes=None,
    raw=True,
    content_type="application/javascript",
)
async def widget_js(req: Req) -> web.Response:
    return web.Response(
        text=_static("widget.js"),
        content_type="application/javascript",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=300"},
    )


@operations.add(
    "GET",
    "/",
    summary="Webchat demo page",
    tag=TAG,
    scopes=None,
    raw=True,
    content_type="text/html",
    errors=(404,),
)
async def demo_page(req: Req) -> web.Response:
    channel = req.ctx.channels.demo_channel()
    if channel is None or not req.ctx.settings.server.demo_page:
        raise NotFound("no demo page: no webchat channel is configured", code="no_demo_page")
    page = _static("demo.html").replace(
        'data-channel="webchat"', f'data-channel="{html.escape(channel, quote=True)}"'
    )
    return web.Response(
        text=page,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": "default-src 'self'; connect-src 'self' ws: wss:; "
            "img-src 'self' data: https: http:; style-src 'self' 'unsafe-inline'; "
            "script-src 'self' 'unsafe-inline'",
            "X-Content-Type-Options": "nosniff",
        },
    )
