"""The live event stream (Server-Sent Events) read from the durable event log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web

from gateway.api.auth import Authenticator, Principal
from gateway.api.schemas import EventsQuery, EventTicket
from gateway.api.spec import Header, Operations, Req
from gateway.events import filter_events, seq_of, type_matcher
from kernel.errors import Malformed, StoreUnavailable
from kernel.events import Event

if TYPE_CHECKING:
    from gateway.api.context import ApiContext

PAGE = 500
log = logging.getLogger(__name__)
operations = Operations()
EPHEMERAL_QUEUE = 256
# Events are written in pieces of about this size, so a client that stops reading holds
# at most this much (plus the kernel's socket buffers) before it is cut off.
WRITE_CHUNK = 64 * 1024


def encode(event: Event) -> bytes:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.envelope()}\n\n".encode()


async def _still_valid(auth: Authenticator, principal: Principal) -> bool:
    try:
        return await auth.still_valid(principal)
    except StoreUnavailable:
        return True  # not known to be revoked: checked again next time


def _start_after(req: Req, q: EventsQuery) -> int | None:
    raw = req.header("Last-Event-ID") or q.last_event_id
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise Malformed(
            "Last-Event-ID must be an event id from this stream", code="invalid_event_id"
        ) from None
    if value < 0:
        raise Malformed("Last-Event-ID must not be negative", code="invalid_event_id")
    return value


@operations.add(
    "POST",
    "/v1/events/tickets",
    summary="A single-use ticket to open the event stream",
    description="For browsers, whose EventSource cannot send an Authorization header: "
    "`GET /v1/events?ticket=...` opens the stream as the token that made the ticket (same "
    "scopes; revoking the token ends the stream). The ticket works once, within "
    "`[events] ticket_seconds` (60 s by default); a used, expired or unknown one gets 401 "
    "`invalid_ticket`, counted as a failed login. To resume, make another and pass "
    "`last_event_id`.",
    tag="events",
    response=EventTicket,
    status=201,
)
async def make_ticket(req: Req) -> EventTicket:
    assert req.principal is not None
    ticket, expires = await req.ctx.auth.make_ticket(
        req.principal, req.ctx.settings.events.ticket_seconds
    )
    return EventTicket(ticket=ticket, expires_at=expires)


@operations.add(
    "GET",
    "/v1/events",
    summary="Live stream of events (Server-Sent Events)",
    description="Each SSE message carries `id` (the event id), `event` (its type) and "
    "`data` (the event envelope as JSON). Reconnect with Last-Event-ID to continue "
    "without gaps; without it the stream starts with new events. Heartbeat comments "
    "keep idle connections open.",
    tag="events",
    query=EventsQuery,
    raw=True,
    content_type="text/event-stream",
    headers=(Header("Last-Event-ID", "Resume after this event id."),),
    tickets=True,
)
async def stream_events(req: Req) -> web.StreamResponse:
    q = cast(EventsQuery, req.query)
    ctx = req.ctx
    after = _start_after(req, q)
    last = ctx.bus.last_seq if after is None else after
    types = [t.strip() for t in q.types.split(",") if t.strip()] if q.types else None
    match = type_matcher(types)
    return await serve_stream(
        req.request,
        ctx,
        req.principal,
        last,
        match,
        q.conversation_id,
        typing=q.ephemeral == "typing",
    )


async def serve_stream(
    request: web.Request,
    ctx: ApiContext,
    principal: Principal | None,
    last: int,
    match: Callable[[str], bool],
    conversation_id: str | None,
    *,
    typing: bool = False,
    encoder: Callable[[Event], bytes] = encode,
) -> web.StreamResponse:
    """Events after ``last`` as Server-Sent Events until the client leaves, the gateway
    closes or ``principal``'s token is revoked (the API's stream, and the console's)."""
    heartbeat = ctx.settings.events.sse_heartbeat_seconds

    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await resp.prepare(request)
    await resp.write(b"retry: 2000\n\n: connected\n\n")

    pending: deque[dict[str, Any]] = deque(maxlen=EPHEMERAL_QUEUE)
    nudge = asyncio.Event()
    unsubscribe = None
    if typing:

        def on_signal(payload: dict[str, Any]) -> None:
            data = payload.get("data", {})
            if conversation_id is None or data.get("conversation_id") == conversation_id:
                pending.append(payload)
                nudge.set()

        unsubscribe = ctx.bus.subscribe_ephemeral(on_signal)

    slow = ctx.settings.events.slow_consumer_seconds
    loop = asyncio.get_running_loop()
    last_write = loop.time()

    async def write(data: bytes) -> None:
        nonlocal last_write
        # aiohttp waits for the socket to drain above its buffer limit: a reader that stops
        # reading blocks here, and is cut off rather than buffered for without bound.
        async with asyncio.timeout(slow):
            await resp.write(data)
        last_write = loop.time()

    # The token is checked again while the stream is open: at once when tokens change in
    # this process, and every `cache_seconds` for a revocation on another replica.
    recheck = ctx.auth.cache_seconds
    next_check = loop.time() + recheck
    ctx.lifecycle.streams += 1
    try:
        while True:
            batch = ctx.bus.from_ring(last, PAGE)
            if batch is None:
                batch = await ctx.store.events.after(last, PAGE)
            if batch:
                chunk = bytearray()
                for event in filter_events(batch, match, conversation_id):
                    chunk += encoder(event)
                    if len(chunk) >= WRITE_CHUNK:
                        await write(bytes(chunk))
                        chunk.clear()
                if chunk:
                    await write(bytes(chunk))
                last = seq_of(batch[-1])
                if len(batch) == PAGE:
                    continue
            while pending:
                payload = pending.popleft()
                data = json.dumps(payload, ensure_ascii=False)
                await write(f"event: {payload['type']}\ndata: {data}\n\n".encode())
            nudge.clear()
            waiter = asyncio.ensure_future(ctx.bus.wait(last))
            nudger = asyncio.ensure_future(nudge.wait())
            closing = asyncio.ensure_future(ctx.lifecycle.closing.wait())
            tokens = asyncio.ensure_future(ctx.auth.changed().wait())
            wake_at = (
                min(last_write + heartbeat, next_check) if principal else last_write + heartbeat
            )
            try:
                done, _ = await asyncio.wait(
                    {waiter, nudger, closing, tokens},
                    timeout=max(0.0, wake_at - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
            finally:
                for task in (waiter, nudger, closing, tokens):
                    task.cancel()
            if ctx.lifecycle.closing.is_set():
                break
            now = loop.time()
            if principal is not None and (tokens in done or now >= next_check):
                next_check = now + recheck
                if not await _still_valid(ctx.auth, principal):
                    log.info("event stream closed: its token %s was revoked", principal.token_id)
                    await write(b": the token was revoked\n\n")
                    break
            if now - last_write >= heartbeat:
                await write(b": heartbeat\n\n")
    except TimeoutError:
        log.info("event stream cut off: the client did not keep up (last id %s)", last)
        # Drop what is still buffered for it instead of waiting to flush it: the client
        # resumes from the last complete event it received.
        if request.transport is not None:
            request.transport.abort()
        return resp
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        ctx.lifecycle.streams -= 1
        if unsubscribe is not None:
            unsubscribe()
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp
