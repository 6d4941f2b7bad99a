"""Health, readiness, metrics, the OpenAPI document, and admin-only tokens and channels."""

from __future__ import annotations

from typing import cast

from aiohttp import web

from gateway import __version__
from gateway.api.auth import ADMIN_ONLY, READ_METRICS, hash_token, new_token
from gateway.api.errors import Unauthorized
from gateway.api.schemas import (
    ChannelDetail,
    ChannelFields,
    ChannelInfo,
    ChannelList,
    Health,
    Readiness,
    TokenBody,
    TokenCreated,
    TokenInfo,
    TokenList,
)
from gateway.api.spec import API, Operations, Req
from gateway.channels import public_view
from kernel.errors import Invalid, NotFound, StoreUnavailable
from kernel.ids import AgentId, TokenId, new_token_id

TAG = "system"
operations = Operations()


@operations.add(
    "GET", "/healthz", summary="The process is up", tag=TAG, scopes=None, response=Health
)
async def healthz(req: Req) -> Health:
    return Health(status="ok", version=__version__)


async def _guarded(req: Req) -> bool:
    """With `[server] metrics_token` set, whether this request may see the details: it
    must carry that token or an admin token (401 for one that is not valid, counted as a
    failed login; 403 for another scope). Always True when the token is not set."""
    if not req.ctx.settings.server.metrics_token.get_secret_value():
        return True
    if "Authorization" not in req.request.headers:
        return False
    principal = await req.ctx.logins.authenticate(req.request)
    principal.require(READ_METRICS)
    return True


@operations.add(
    "GET",
    "/readyz",
    summary="The store answers; each channel's state",
    description="200 when the store answers, 503 otherwise. Channels report their own "
    "state (CONNECTED, BAD_CREDENTIALS, ...); a broken channel does not make the gateway "
    "unready, because the others still work. Replicas report Redis too: without it they "
    "poll the store, so they stay ready. With `[server] metrics_token` set, the details "
    "(store, redis, channels) need `Authorization: Bearer <that token or an admin "
    "token>`; without it the answer is only the status.",
    tag=TAG,
    scopes=None,
    response=Readiness,
    errors=(401, 403, 503),
)
async def readyz(req: Req) -> tuple[Readiness, int] | web.Response:
    details = await _guarded(req)
    store_state = "ok"
    try:
        await req.ctx.store.ping()
    except StoreUnavailable as exc:
        store_state = f"unreachable: {exc.message}"
    except Exception as exc:
        store_state = f"unreachable: {type(exc).__name__}"
    ready = store_state == "ok" and req.ctx.lifecycle.started
    status = 200 if ready else 503
    if not details:
        return web.json_response({"status": "ready" if ready else "not_ready"}, status=status)
    body = Readiness(
        status="ready" if ready else "not_ready",
        store=store_state,
        redis=req.ctx.redis_state(),
        channels={c.id: c for c in channel_infos(req)},
    )
    return body, status


@operations.add(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    description="This process's metrics in the Prometheus text format (OpenMetrics when "
    "the scraper asks for it). With `[server] metrics_token` set, they need "
    "`Authorization: Bearer <that token or an admin token>`.",
    tag=TAG,
    scopes=None,
    raw=True,
    content_type="text/plain",
    errors=(401, 403),
)
async def metrics(req: Req) -> web.Response:
    if not await _guarded(req):
        raise Unauthorized("an Authorization: Bearer <token> header is required")
    await req.ctx.metrics.refresh()
    body, content_type = req.ctx.metrics.render(req.request.headers.get("Accept", ""))
    response = web.Response(body=body, headers={"Content-Type": content_type})
    response.enable_compression()
    return response


@operations.add(
    "GET",
    "/v1/openapi.json",
    summary="This document",
    tag=TAG,
    scopes=None,
    raw=True,
)
async def openapi(req: Req) -> web.Response:
    body = req.request.app[API].document(__version__)
    return web.Response(text=body, content_type="application/json")


def channel_infos(req: Req) -> list[ChannelInfo]:
    return [ChannelInfo(**vars(status)) for status in req.ctx.channels.statuses()]


@operations.add(
    "GET",
    "/v1/channels",
    summary="Configured channels and their state (credentials are never shown)",
    tag="channels",
    scopes=ADMIN_ONLY,
    response=ChannelList,
)
async def list_channels(req: Req) -> ChannelList:
    return ChannelList(items=channel_infos(req))


def _detail(req: Req, channel_id: str) -> ChannelDetail:
    for info in channel_infos(req):
        if info.id == channel_id:
            break
    else:
        raise NotFound(f"channel {channel_id} not found", code="channel_not_found")
    settings = req.ctx.channel_admin.current(channel_id)
    if settings is None:  # locked: its settings cannot be opened (see gateway.channels)
        known = {"id": info.id, "type": info.type}
        return ChannelDetail(**info.model_dump(), settings=known, secrets=[])
    shown, secrets = public_view(settings)
    return ChannelDetail(**info.model_dump(), settings=shown, secrets=secrets)


@operations.add(
    "GET",
    "/v1/channels/{id}",
    summary="One channel: its state and settings (credentials: only which are set)",
    tag="channels",
    scopes=ADMIN_ONLY,
    response=ChannelDetail,
    errors=(404,),
)
async def get_channel(req: Req) -> ChannelDetail:
    return _detail(req, req.param("id"))


@operations.add(
    "POST",
    "/v1/channels",
    summary="Add a channel; it starts at once and at every start (credentials are "
    "stored encrypted and never shown again)",
    tag="channels",
    scopes=ADMIN_ONLY,
    body=ChannelFields,
    response=ChannelDetail,
    status=201,
    errors=(409,),
)
async def create_channel(req: Req) -> ChannelDetail:
    body = cast(ChannelFields, req.body)
    settings = await req.ctx.channel_admin.create(body.model_dump())
    return _detail(req, settings.id)


@operations.add(
    "PATCH",
    "/v1/channels/{id}",
    summary="Change a channel added through the API (JSON merge patch); it restarts "
    "with its new settings",
    tag="channels",
    scopes=ADMIN_ONLY,
    body=ChannelFields,
    response=ChannelDetail,
    errors=(404, 409, 422),
)
async def update_channel(req: Req) -> ChannelDetail:
    body = cast(ChannelFields, req.body)
    await req.ctx.channel_admin.update(req.param("id"), body.model_dump())
    return _detail(req, req.param("id"))


@operations.add(
    "DELETE",
    "/v1/channels/{id}",
    summary="Remove a channel added through the API (its conversations and messages stay)",
    tag="channels",
    scopes=ADMIN_ONLY,
    status=204,
    errors=(404, 409),
)
async def delete_channel(req: Req) -> None:
    await req.ctx.channel_admin.delete(req.param("id"))


@operations.add(
    "POST",
    "/v1/tokens",
    summary="Create an API token (its value is shown only in this answer)",
    tag="tokens",
    scopes=ADMIN_ONLY,
    body=TokenBody,
    response=TokenCreated,
    status=201,
    errors=(422,),
)
async def create_token(req: Req) -> TokenCreated:
    body = cast(TokenBody, req.body)
    agent_id = AgentId(body.agent_id) if body.agent_id else None
    if agent_id is not None and await req.ctx.store.agents.get(agent_id) is None:
        raise Invalid(f"agent {agent_id} not found", code="agent_not_found")
    if "agent" in body.scopes and agent_id is None:
        raise Invalid("agent tokens need agent_id", code="agent_id_required")
    if ("bot" in body.scopes) != (body.bot_id is not None):
        raise Invalid("bot tokens, and only they, need bot_id", code="bot_id_required")
    if body.bot_id is not None and not any(b.id == body.bot_id for b in req.ctx.settings.bots):
        raise Invalid(f"bot {body.bot_id} not found in [[bots]]", code="bot_not_found")
    token = new_token()
    record = await req.ctx.store.tokens.create(
        new_token_id(),
        body.name,
        hash_token(token),
        sorted(set(body.scopes)),
        agent_id,
        body.bot_id,
    )
    req.ctx.auth.forget()
    return TokenCreated(**record.model_dump(exclude={"last_used_at"}), token=token)


@operations.add(
    "GET",
    "/v1/tokens",
    summary="List API tokens",
    tag="tokens",
    scopes=ADMIN_ONLY,
    response=TokenList,
)
async def list_tokens(req: Req) -> TokenList:
    records = await req.ctx.store.tokens.all()
    return TokenList(items=[TokenInfo(**r.model_dump(exclude={"last_used_at"})) for r in records])


@operations.add(
    "DELETE",
    "/v1/tokens/{id}",
    summary="Revoke an API token",
    tag="tokens",
    scopes=ADMIN_ONLY,
    status=204,
    errors=(404,),
)
async def revoke_token(req: Req) -> None:
    await req.ctx.store.tokens.revoke(TokenId(req.param("id")))
    req.ctx.auth.forget()
