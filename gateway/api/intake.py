"""The provider side: webhooks, the webchat socket, widget.js and the demo page."""

from __future__ import annotations

import html
from importlib import resources

from aiohttp import web

from connectors.base import SocketConnector, WebhookConnector
from connectors.webchat.connector import WebchatConnector
from gateway.api.attachments import file_response, read_upload
from gateway.api.errors import Forbidden
from gateway.api.spec import Operations, Req, error_response
from kernel.errors import DomainError, NotFound

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


def _webchat(req: Req) -> WebchatConnector:
    connector = req.ctx.channels.get(req.param("channel_id"))
    if not isinstance(connector, WebchatConnector):
        raise NotFound(f"no webchat channel {req.param('channel_id')}", code="channel_not_found")
    return connector


@operations.add(
    "POST",
    "/webchat/{channel_id}/uploads",
    summary="A visitor uploads a file (then sends it in a message frame's attachment_ids)",
    description="multipart/form-data with the file in a field named `file`, and the header "
    "`Authorization: Bearer <visitor token>` (the session frame's token). Within the "
    "channel's `max_upload_bytes` and `upload_types`; counts against the visitor's message "
    "limits. Answers `{id, name, mime, size, url}`, `url` a signed, expiring link.",
    tag=TAG,
    scopes=None,
    raw=True,
    status=201,
    errors=(400, 401, 403, 404, 413, 415, 429),
)
async def webchat_upload(req: Req) -> web.StreamResponse:
    connector = _webchat(req)
    cors = connector.cors_headers(req.request)
    visitor = await connector.upload_visitor(req.request)
    if isinstance(visitor, web.Response):
        visitor.headers.update(cors)
        return visitor
    try:
        found = await read_upload(
            req.request,
            max_bytes=connector.settings.max_upload_bytes,
            types=connector.settings.upload_types,
        )
    except DomainError as exc:
        answer = error_response(exc)
        answer.headers.update(cors)
        return answer
    part = await req.ctx.attachments.save(
        connector.channel_id, found.data, name=found.name, mime=found.mime
    )
    attachment_id = part.attachment_id or ""
    body = {
        "id": attachment_id,
        "name": part.name,
        "mime": part.mime,
        "size": part.size,
        "url": connector.file_url(attachment_id),
    }
    return web.json_response(body, status=201, headers=cors)


@operations.add(
    "OPTIONS",
    "/webchat/{channel_id}/uploads",
    summary="CORS preflight of an upload from a page of an allowed origin",
    tag=TAG,
    scopes=None,
    raw=True,
    status=204,
    errors=(404,),
)
async def webchat_upload_preflight(req: Req) -> web.StreamResponse:
    connector = _webchat(req)
    return web.Response(status=204, headers=connector.cors_headers(req.request))


@operations.add(
    "GET",
    "/webchat/{channel_id}/files/{id}",
    summary="A file of a webchat conversation, by the signed link the visitor was given",
    tag=TAG,
    scopes=None,
    raw=True,
    content_type="application/octet-stream",
    errors=(403, 404),
)
async def webchat_file(req: Req) -> web.StreamResponse:
    connector = _webchat(req)
    query = req.request.query
    attachment_id = req.param("id")
    if not connector.file_link_ok(attachment_id, query.get("expires", ""), query.get("sig", "")):
        raise Forbidden("the link is not valid or has expired", code="link_expired")
    return await file_response(req.ctx.attachments, attachment_id)


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
