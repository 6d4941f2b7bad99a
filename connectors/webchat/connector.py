"""The webchat connector: serves the socket protocol of design.md section 7a."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from connectors.base import Capability, HealthState, SocketConnector
from connectors.webchat import render
from connectors.webchat.hub import Hub
from connectors.webchat.limits import Limits, address_key, history_cost
from connectors.webchat.parse import (
    FrameError,
    HistoryFrame,
    IdentifyFrame,
    MessageFrame,
    TypingFrame,
    file_link_ok,
    identity_hmac_ok,
    parse_frame,
    sign_file,
    sign_token,
    verify_token,
)
from connectors.webchat.settings import WebchatSettings
from kernel.envelope import InboundMessage, OutboundMessage, Sender, SendReceipt
from kernel.ids import ChannelId, ConversationId, MessageId, new_visitor_id
from kernel.models import (
    ChannelType,
    Identity,
    MediaPart,
    Message,
    MessageStatus,
    Part,
    TextPart,
)
from kernel.ratelimit import Buckets, LocalBuckets, TokenBucket
from kernel.secrets import Keyring
from kernel.text import InvalidPhoneNumber, normalize_email, normalize_phone

log = logging.getLogger(__name__)

# aiohttp closes the socket (1009) above this; below it, oversized frames get an error
# frame and the socket stays open.
WS_MAX_MSG = 1024 * 1024
HEARTBEAT = 25.0
SHOWN_REMEMBERED = 10_000
DEFAULT_HISTORY = 50
# A socket that goes on sending while refused is closed (1008): refusals are answered
# with an error frame up to this many at once, then one a second.
REFUSALS_BURST = 50
REFUSALS_PER_SECOND = 1.0


@dataclass
class _Socket:
    """One open socket and what it has done."""

    ws: web.WebSocketResponse
    visitor: str
    address: str
    # The visitor's open conversation as far as this socket knows: until there is one,
    # a message or identify may count against the address's new conversations.
    conversation: ConversationId | None
    counted: bool = False
    typing: bool = False
    refusals: TokenBucket = field(
        default_factory=lambda: TokenBucket(REFUSALS_PER_SECOND, REFUSALS_BURST)
    )


class WebchatConnector(SocketConnector):
    type: ClassVar[ChannelType] = ChannelType.WEBCHAT
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TEXT,
            Capability.IMAGE,
            Capability.AUDIO,
            Capability.VIDEO,
            Capability.FILE,
            Capability.LINK,
            Capability.LOCATION,
            Capability.CHOICES,
            Capability.TYPING,
        }
    )

    def __init__(
        self,
        settings: WebchatSettings,
        signing_key: bytes | Keyring,
        buckets: Buckets | None = None,
    ) -> None:
        super().__init__(ChannelId(settings.id))
        self.settings = settings
        self._key = signing_key
        self.hub = Hub()
        self.limits = Limits(settings, buckets if buckets is not None else LocalBuckets())
        # For messages stored by other processes (relay): the visitor of each
        # conversation with a socket open here, and the messages shown here already.
        self._visitor_of: dict[str, str] = {}
        self._conversations_of: dict[str, set[str]] = {}
        self._shown: OrderedDict[str, None] = OrderedDict()
        self._storing: set[str] = set()  # external ids of messages being stored here
        self._relayed: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._relaying: asyncio.Task[None] | None = None

    async def start(self, sink: Any) -> None:
        await super().start(sink)
        self.set_health(HealthState.CONNECTED)

    async def aclose(self) -> None:
        if self._relaying is not None:
            self._relaying.cancel()
            await asyncio.gather(self._relaying, return_exceptions=True)
        await self.hub.close_all()
        await super().aclose()

    def open_sockets(self) -> int:
        return self.hub.count()

    async def close_sockets(self) -> None:
        await self.hub.close_all()

    # --- handshake -------------------------------------------------------------------

    def origin_allowed(self, origin: str | None, request: web.Request) -> bool:
        if origin is None:
            return True  # not a browser (apps, servers): Origin only guards browsers
        allowed = self.settings.allowed_origins
        origin = origin.strip().lower().rstrip("/")
        if "*" in allowed or origin in allowed:
            return True
        return urlsplit(origin).netloc == request.host.lower()

    async def handle_socket(self, request: web.Request) -> web.StreamResponse:
        if not self.origin_allowed(request.headers.get("Origin"), request):
            return _json_error(403, "origin_not_allowed", "this origin may not open the chat")
        ws = web.WebSocketResponse(heartbeat=HEARTBEAT, max_msg_size=WS_MAX_MSG)
        if not ws.can_prepare(request).ok:
            return _json_error(400, "websocket_required", "expected a WebSocket upgrade")
        address = address_key(request.remote)
        refused = self.limits.admit(address)
        if refused is not None:
            return _json_error(
                refused.status, refused.code, refused.message, retry_after=refused.retry_after
            )
        try:
            return await self._serve(request, ws, address)
        finally:
            self.limits.release(address)

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, address: str
    ) -> web.StreamResponse:
        ttl = self.settings.token_ttl_days * 86400
        given = request.query.get("token")
        token = verify_token(self._key, given, self.channel_id, ttl) if given else None
        wait = await self.limits.connect(address, token.visitor_id if token else None)
        if wait:
            return _json_error(
                429, "rate_limited", "too many chat connections; try again later", retry_after=wait
            )
        await ws.prepare(request)
        visitor = token.visitor_id if token else new_visitor_id()
        conversation = (
            await self.sink.open_conversation(self.channel_id, visitor) if token else None
        )
        # A fresh token on every connect: active visitors never reach the expiry.
        await ws.send_str(
            render.session(sign_token(self._key, visitor, self.channel_id), visitor, conversation)
        )
        self.hub.add(visitor, ws)
        if conversation is not None:
            self._follow(visitor, conversation)
        sock = _Socket(ws, visitor, address, conversation)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_frame(sock, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await self._on_frame(sock, None)
                elif msg.type == WSMsgType.ERROR:
                    log.info("webchat socket closed with error: %s", ws.exception())
                    break
        finally:
            self.hub.remove(visitor, ws)
            if not self.hub.has_other(visitor, ws):
                for conversation_id in self._conversations_of.pop(visitor, ()):
                    self._visitor_of.pop(conversation_id, None)
            if sock.typing:
                self.sink.typing(self.channel_id, visitor, False)
        return ws

    # --- frames ----------------------------------------------------------------------

    async def _on_frame(self, sock: _Socket, data: str | None) -> None:
        """Handle one client frame (None: a binary one). Every frame, refused ones too,
        counts against the visitor's and the address's frame limits."""
        try:
            await self._frame(sock, data)
        except ConnectionResetError:
            # The visitor left before the answer could be written (what was stored stays
            # stored: a message is acknowledged again when its client_id is resent).
            log.debug("webchat: a socket of %s closed before its answer", sock.address)

    async def _frame(self, sock: _Socket, data: str | None) -> None:
        frame = None
        try:
            if data is None:
                raise FrameError("bad_frame", "send JSON text frames")
            frame = parse_frame(data, max_text=self.settings.max_text_length)
        except FrameError as exc:
            error: FrameError | None = exc
        else:
            error = None
        cost = 1
        if isinstance(frame, HistoryFrame):
            cost = history_cost(self._history_limit(frame))
        wait = await self.limits.frame(
            sock.address, sock.visitor, cost=cost, message=isinstance(frame, MessageFrame)
        )
        if wait:
            if isinstance(frame, MessageFrame):
                await self._refuse(sock, "too many messages; slow down", frame.client_id)
            else:
                await self._refuse(
                    sock, "too many frames; slow down", error.client_id if error else None
                )
            return
        try:
            if error is not None:
                raise error
            if isinstance(frame, MessageFrame):
                await self._message(sock, frame)
                if sock.typing:
                    sock.typing = False
                    self.sink.typing(self.channel_id, sock.visitor, False)
            elif isinstance(frame, HistoryFrame):
                await self._history(sock, frame)
            elif isinstance(frame, TypingFrame):
                on = frame.state == "on"
                if on != sock.typing:
                    self.sink.typing(self.channel_id, sock.visitor, on)
                sock.typing = on
            elif isinstance(frame, IdentifyFrame):
                await self._identify(sock, frame)
        except FrameError as exc:
            await sock.ws.send_str(render.error(exc.code, exc.message, exc.client_id))
        except ConnectionResetError:
            raise
        except Exception:
            log.exception("webchat frame failed")
            await sock.ws.send_str(
                render.error("internal", "the server could not handle this frame")
            )

    async def _refuse(self, sock: _Socket, message: str, client_id: str | None) -> None:
        if not sock.refusals.take():
            log.info("webchat: closed a socket of %s that kept flooding", sock.address)
            await sock.ws.close(
                code=WSCloseCode.POLICY_VIOLATION, message=b"rate limited: too many frames"
            )
            return
        await sock.ws.send_str(render.error("rate_limited", message, client_id))

    async def _count_new(self, sock: _Socket, client_id: str | None) -> None:
        """A visitor without an open conversation is about to store something: the first
        time (in the window), it counts against the address's new conversations."""
        if sock.counted or sock.conversation is not None:
            return
        if await self.limits.newcomer(sock.address, sock.visitor):
            raise FrameError(
                "rate_limited",
                "too many new conversations from this address; try again later",
                client_id,
            )
        sock.counted = True

    async def _message(self, sock: _Socket, frame: MessageFrame) -> None:
        await self._count_new(sock, frame.client_id)
        visitor, ws = sock.visitor, sock.ws
        parts: list[Part] = [TextPart(text=frame.text)] if frame.text else []
        for attachment_id in dict.fromkeys(frame.attachment_ids):
            part = await self.sink.attachment_part(self.channel_id, attachment_id)
            if part is None:
                raise FrameError(
                    "unknown_attachment",
                    f"no upload {attachment_id} on this channel",
                    frame.client_id,
                )
            parts.append(part)
        inbound = InboundMessage(
            channel_id=self.channel_id,
            external_id=f"{visitor}:{frame.client_id}",
            sender=Sender(external_id=visitor),
            parts=parts,
            # A pick: the gateway matches it to the question asked (metadata.choice).
            metadata={"choice_id": frame.choice_id} if frame.choice_id else {},
        )
        # Stored from here: its own commit must not come back to it through relay().
        self._storing.add(inbound.external_id)
        try:
            result = await self.sink.ingest(inbound)
        except Exception:
            log.exception("storing a webchat message failed")
            raise FrameError(
                "internal", "the message could not be stored; send it again", frame.client_id
            ) from None
        finally:
            self._storing.discard(inbound.external_id)
        sock.conversation = result.conversation_id
        await ws.send_str(render.ack(frame.client_id, result.message.id))
        self._follow(visitor, result.conversation_id)
        self._shown_here(result.message.id)
        if not result.duplicate and self.hub.has_other(visitor, ws):
            await self.hub.push(visitor, self._message_frame(result.message), skip=ws)

    def _history_limit(self, frame: HistoryFrame) -> int:
        return min(frame.limit or DEFAULT_HISTORY, self.settings.history_limit_max)

    async def _history(self, sock: _Socket, frame: HistoryFrame) -> None:
        messages = await self.sink.history(
            self.channel_id,
            sock.visitor,
            before=MessageId(frame.before) if frame.before else None,
            after=MessageId(frame.after) if frame.after else None,
            limit=self._history_limit(frame),
        )
        await sock.ws.send_str(render.history([self._shown_to_visitor(m) for m in messages]))

    async def _identify(self, sock: _Socket, frame: IdentifyFrame) -> None:
        visitor = sock.visitor
        if frame.email and normalize_email(frame.email) is None:
            raise FrameError("bad_frame", "identify: email is not an e-mail address")
        if frame.phone:
            try:
                normalize_phone(frame.phone)
            except InvalidPhoneNumber:
                raise FrameError("bad_frame", "identify: phone is not a phone number") from None
        profile = {"display_name": frame.name, "email": frame.email, "phone": frame.phone}
        sender = Sender(external_id=visitor, **profile)
        secret = self.settings.identity_secret
        if secret is None:
            await self._count_new(sock, None)
            # Nothing vouches for these values: they describe the contact, never link it.
            await self.sink.update_identity(self.channel_id, sender)
            return
        if not frame.user_id or not identity_hmac_ok(
            secret.get_secret_value().encode(), frame.user_id, frame.hmac
        ):
            raise FrameError("invalid_identity", "identify needs user_id and a valid hmac")
        await self._count_new(sock, None)
        # The HMAC proves user_id: every visitor identified as this user is one contact,
        # and the site vouches for the e-mail and phone it signed in with, so they link
        # the contact to the same person's other channels (a mail's sender, a Zalo phone).
        verified = {**profile, "verified": True}
        user = Sender(external_id=f"user:{frame.user_id}", **verified)
        await self.sink.update_identity(
            self.channel_id, Sender(external_id=visitor, **verified), link_to=user
        )

    # --- files -----------------------------------------------------------------------

    def file_url(self, attachment_id: str, now: float | None = None) -> str:
        """A link a visitor's browser can load the file by, signed and expiring (the
        expiry rounded up to the hour, so the same link is cached for a while)."""
        seconds = self.settings.file_link_hours * 3600
        current = int(time.time() if now is None else now)
        expires = (current + seconds) // 3600 * 3600 + 3600
        signature = sign_file(self._key, self.channel_id, attachment_id, expires)
        return f"/webchat/{self.channel_id}/files/{attachment_id}?expires={expires}&sig={signature}"

    def file_link_ok(self, attachment_id: str, expires: str, signature: str) -> bool:
        return file_link_ok(self._key, self.channel_id, attachment_id, expires, signature)

    def _shown_to_visitor(self, message: Message) -> Message:
        """The message with its kept files behind signed links (their API URLs need an
        agent's token), and nothing of where the gateway fetched them from."""
        if not any(isinstance(p, MediaPart) and p.attachment_id for p in message.parts):
            return message
        parts: list[Part] = [
            p.model_copy(update={"url": self.file_url(p.attachment_id), "source_url": None})
            if isinstance(p, MediaPart) and p.attachment_id
            else p
            for p in message.parts
        ]
        return message.model_copy(update={"parts": parts})

    def _message_frame(self, message: Message) -> str:
        return render.message(self._shown_to_visitor(message))

    async def upload_visitor(self, request: web.Request) -> str | web.Response:
        """Whose upload this is (the visitor its bearer token names), or the answer that
        refuses it: no or a bad token, a page of an origin that may not, too many."""
        if not self.origin_allowed(request.headers.get("Origin"), request):
            return _json_error(403, "origin_not_allowed", "this origin may not upload")
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        found = (
            verify_token(
                self._key, token.strip(), self.channel_id, self.settings.token_ttl_days * 86400
            )
            if scheme.lower() == "bearer"
            else None
        )
        if found is None:
            return _json_error(
                401, "invalid_token", "Authorization: Bearer <the visitor token of the session>"
            )
        wait = await self.limits.frame(address_key(request.remote), found.visitor_id, message=True)
        if wait:
            return _json_error(
                429, "rate_limited", "too many messages; slow down", retry_after=wait
            )
        return found.visitor_id

    def cors_headers(self, request: web.Request) -> dict[str, str]:
        """What lets a page of an allowed origin upload (the widget on a shop's site)."""
        origin = request.headers.get("Origin")
        if origin is None or not self.origin_allowed(origin, request):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Authorization",
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }

    # --- outbound --------------------------------------------------------------------

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        # Stored messages reach visitors who are offline now through `history` later.
        delivered = outbound.message.model_copy(update={"status": MessageStatus.SENT})
        self._shown_here(delivered.id)
        await self.hub.push(outbound.recipient.external_id, self._message_frame(delivered))
        return SendReceipt()

    # --- messages stored by other processes ------------------------------------------

    def _follow(self, visitor: str, conversation_id: str) -> None:
        if self._visitor_of.get(conversation_id) != visitor:
            self._visitor_of[conversation_id] = visitor
            self._conversations_of.setdefault(visitor, set()).add(conversation_id)

    def _shown_here(self, message_id: str) -> None:
        self._shown[message_id] = None
        if len(self._shown) > SHOWN_REMEMBERED:
            self._shown.popitem(last=False)

    def relay(self, message: Message) -> None:
        if message.id in self._shown or message.external_id in self._storing:
            return
        visitor = self._visitor_of.get(message.conversation_id)
        if visitor is None:
            return  # no socket of its visitor here
        self._shown_here(message.id)
        self._relayed.put_nowait((visitor, self._message_frame(message)))
        if self._relaying is None or self._relaying.done():
            self._relaying = asyncio.create_task(self._push_relayed(), name="webchat-relay")

    async def _push_relayed(self) -> None:
        while not self._relayed.empty():  # in order, one at a time
            visitor, frame = self._relayed.get_nowait()
            await self.hub.push(visitor, frame)

    async def send_typing(self, recipient: Identity, on: bool) -> None:
        await self.hub.push(recipient.external_id, render.typing(on))


def _json_error(
    status: int, code: str, message: str, *, retry_after: float | None = None
) -> web.Response:
    headers, details = {}, None
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        details = {"retry_after_seconds": round(retry_after, 3)}
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message, "details": details}}),
        content_type="application/json",
        headers=headers,
    )
