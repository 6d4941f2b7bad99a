"""The webchat connector: serves the socket protocol of design.md section 7a."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from typing import Any, ClassVar
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from connectors.base import Capability, HealthState, SocketConnector
from connectors.webchat import render
from connectors.webchat.hub import Hub
from connectors.webchat.parse import (
    FrameError,
    HistoryFrame,
    IdentifyFrame,
    MessageFrame,
    TypingFrame,
    identity_hmac_ok,
    parse_frame,
    sign_token,
    verify_token,
)
from connectors.webchat.settings import WebchatSettings
from kernel.envelope import InboundMessage, OutboundMessage, Sender, SendReceipt
from kernel.ids import ChannelId, MessageId, new_visitor_id
from kernel.models import ChannelType, Identity, Message, MessageStatus, TextPart
from kernel.ratelimit import TokenBucket
from kernel.secrets import Keyring
from kernel.text import InvalidPhoneNumber, normalize_email, normalize_phone

log = logging.getLogger(__name__)

# aiohttp closes the socket (1009) above this; below it, oversized frames get an error
# frame and the socket stays open.
WS_MAX_MSG = 1024 * 1024
HEARTBEAT = 25.0
SHOWN_REMEMBERED = 10_000
DEFAULT_HISTORY = 50


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
            Capability.TYPING,
        }
    )

    def __init__(self, settings: WebchatSettings, signing_key: bytes | Keyring) -> None:
        super().__init__(ChannelId(settings.id))
        self.settings = settings
        self._key = signing_key
        self.hub = Hub()
        # For messages stored by other processes (relay): the visitor of each
        # conversation with a socket open here, and the messages shown here already.
        self._visitor_of: dict[str, str] = {}
        self._conversations_of: dict[str, set[str]] = {}
        self._shown: OrderedDict[str, None] = OrderedDict()
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
        await ws.prepare(request)

        ttl = self.settings.token_ttl_days * 86400
        given = request.query.get("token")
        token = verify_token(self._key, given, self.channel_id, ttl) if given else None
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
        bucket = TokenBucket(self.settings.rate_per_second, self.settings.rate_burst)
        typing = False
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    typing = await self._on_frame(ws, visitor, msg.data, bucket, typing)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_str(render.error("bad_frame", "send JSON text frames"))
                elif msg.type == WSMsgType.ERROR:
                    log.info("webchat socket closed with error: %s", ws.exception())
                    break
        finally:
            self.hub.remove(visitor, ws)
            if not self.hub.has_other(visitor, ws):
                for conversation_id in self._conversations_of.pop(visitor, ()):
                    self._visitor_of.pop(conversation_id, None)
            if typing:
                self.sink.typing(self.channel_id, visitor, False)
        return ws

    # --- frames ----------------------------------------------------------------------

    async def _on_frame(
        self,
        ws: web.WebSocketResponse,
        visitor: str,
        data: str,
        bucket: TokenBucket,
        typing: bool,
    ) -> bool:
        """Handle one client frame; returns whether the visitor is now typing."""
        try:
            frame = parse_frame(data, max_text=self.settings.max_text_length)
            if isinstance(frame, MessageFrame):
                await self._message(ws, visitor, frame, bucket)
                if typing:
                    self.sink.typing(self.channel_id, visitor, False)
                return False
            if isinstance(frame, HistoryFrame):
                await self._history(ws, visitor, frame)
            elif isinstance(frame, TypingFrame):
                on = frame.state == "on"
                if on != typing:
                    self.sink.typing(self.channel_id, visitor, on)
                return on
            elif isinstance(frame, IdentifyFrame):
                await self._identify(visitor, frame)
        except FrameError as exc:
            await ws.send_str(render.error(exc.code, exc.message, exc.client_id))
        except Exception:
            log.exception("webchat frame failed")
            await ws.send_str(render.error("internal", "the server could not handle this frame"))
        return typing

    async def _message(
        self, ws: web.WebSocketResponse, visitor: str, frame: MessageFrame, bucket: TokenBucket
    ) -> None:
        if not bucket.take():
            raise FrameError("rate_limited", "too many messages; slow down", frame.client_id)
        inbound = InboundMessage(
            channel_id=self.channel_id,
            external_id=f"{visitor}:{frame.client_id}",
            sender=Sender(external_id=visitor),
            parts=[TextPart(text=frame.text)],
        )
        try:
            result = await self.sink.ingest(inbound)
        except Exception:
            log.exception("storing a webchat message failed")
            raise FrameError(
                "internal", "the message could not be stored; send it again", frame.client_id
            ) from None
        await ws.send_str(render.ack(frame.client_id, result.message.id))
        self._follow(visitor, result.conversation_id)
        self._shown_here(result.message.id)
        if not result.duplicate and self.hub.has_other(visitor, ws):
            await self.hub.push(visitor, render.message(result.message), skip=ws)

    async def _history(self, ws: web.WebSocketResponse, visitor: str, frame: HistoryFrame) -> None:
        limit = min(frame.limit or DEFAULT_HISTORY, self.settings.history_limit_max)
        messages = await self.sink.history(
            self.channel_id,
            visitor,
            before=MessageId(frame.before) if frame.before else None,
            after=MessageId(frame.after) if frame.after else None,
            limit=limit,
        )
        await ws.send_str(render.history(messages))

    async def _identify(self, visitor: str, frame: IdentifyFrame) -> None:
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
            # Nothing vouches for these values: they describe the contact, never link it.
            await self.sink.update_identity(self.channel_id, sender)
            return
        if not frame.user_id or not identity_hmac_ok(
            secret.get_secret_value().encode(), frame.user_id, frame.hmac
        ):
            raise FrameError("invalid_identity", "identify needs user_id and a valid hmac")
        # The HMAC proves user_id: every visitor identified as this user is one contact.
        user = Sender(external_id=f"user:{frame.user_id}", **profile)
        await self.sink.update_identity(self.channel_id, sender, link_to=user)

    # --- outbound --------------------------------------------------------------------

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        # Stored messages reach visitors who are offline now through `history` later.
        delivered = outbound.message.model_copy(update={"status": MessageStatus.SENT})
        self._shown_here(delivered.id)
        await self.hub.push(outbound.recipient.external_id, render.message(delivered))
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
        if message.id in self._shown:
            return
        visitor = self._visitor_of.get(message.conversation_id)
        if visitor is None:
            return  # no socket of its visitor here
        self._shown_here(message.id)
        self._relayed.put_nowait((visitor, render.message(message)))
        if self._relaying is None or self._relaying.done():
            self._relaying = asyncio.create_task(self._push_relayed(), name="webchat-relay")

    async def _push_relayed(self) -> None:
        while not self._relayed.empty():  # in order, one at a time
            visitor, frame = self._relayed.get_nowait()
            await self.hub.push(visitor, frame)

    async def send_typing(self, recipient: Identity, on: bool) -> None:
        await self.hub.push(recipient.external_id, render.typing(on))


def _json_error(status: int, code: str, message: str) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps({"error": {"code": code, "message": message, "details": None}}),
        content_type="application/json",
    )
