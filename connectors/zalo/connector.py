"""The Zalo OA connector: webhook in (verify, parse, store, answer), CS messages out.

Tokens (channels.md 2.5): the OA access token lives about 25 hours and the refresh token
is single use. One refresh runs at a time; the new pair is written (encrypted) to the
channel's state before it is used, so a restart, or another process reading the same
store, continues with it. The configured pair is only the starting point: once a refresh
has happened the stored pair wins, until the configured refresh token is changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import httpx
from aiohttp import web
from pydantic import SecretStr

from connectors.base import Capability, HealthState, Sink
from connectors.degrade import as_text
from connectors.errors import (
    AuthError,
    PermanentError,
    SendError,
)
from connectors.provider import ProviderConnector, json_error, read_body
from connectors.tokens import SealedPair, Tokens, claim_refresh, seed_of
from connectors.wire import decode_body
from connectors.zalo import render
from connectors.zalo.client import TokenPair, TokenRejected, ZaloClient
from connectors.zalo.parse import (
    SIGNATURE_HEADER,
    Delivery,
    OaMessage,
    PayloadError,
    SubmittedInfo,
    Unhandled,
    UserMessage,
    WebhookEvent,
    event_of,
    sent_at,
    signature_fields,
    signature_ok,
)
from connectors.zalo.settings import ZaloSettings
from kernel.envelope import InboundMessage, OutboundMessage, Sender, SendReceipt, StatusUpdate
from kernel.errors import Invalid
from kernel.ids import ChannelId
from kernel.models import (
    ChannelType,
    Direction,
    MediaPart,
    MessageStatus,
    Part,
    ReplyWindow,
    TemplatePart,
    utcnow,
)
from kernel.secrets import Keyring, SecretBox

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKENS_KEY = "tokens"  # sealed: connectors.registry.ZALO_TOKENS declares it for rotation
CUSTOMERS_CACHED = 50_000
OURS_REMEMBERED = 10_000
PROFILE_RETRY_SECONDS = 3600.0
# An OA echo arriving while a send to the same user is under way waits this long for the
# send to finish, so our own message is recognised and not stored twice. Zalo wants its
# answer within 2 seconds.
ECHO_WAIT_SECONDS = 1.5
# After a refresh ahead of expiry failed, the next early try waits this long.
EARLY_REFRESH_PAUSE = 300.0


class ZaloConnector(ProviderConnector):
    type: ClassVar[ChannelType] = ChannelType.ZALO
    # Images (jpg, png, gif) and files (PDF, DOC, DOCX, CSV) go as uploads; everything
    # else (audio, video, stickers, locations, links) becomes text in the shared degrade
    # step, since the CS message API has no way to send them by URL.
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TEXT,
            Capability.IMAGE,
            Capability.FILE,
            Capability.CHOICES,
            Capability.TEMPLATE,
        }
    )

    def __init__(
        self,
        settings: ZaloSettings,
        http: httpx.AsyncClient,
        state_key: bytes | Keyring,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        super().__init__(ChannelId(settings.id))
        self.settings = settings
        self._clock = clock
        self.client = ZaloClient(
            http, settings.api_base, settings.oauth_base, zns_base=settings.zns_api_base, now=clock
        )
        self._box = SecretBox(state_key)
        self._secret = settings.oa_secret_key.get_secret_value()
        # Descending from the configured refresh token (a newly configured one replaces it).
        seed = seed_of(settings.refresh_token.get_secret_value())
        self._stored = SealedPair(TOKENS_KEY, SecretBox(state_key), seed, "Zalo tokens")
        self._tokens = Tokens(settings.access_token, settings.refresh_token, None)
        self._refresh_lock = asyncio.Lock()
        self._early_refresh_after = 0.0
        self._ours: OrderedDict[str, None] = OrderedDict()  # message ids of our sends
        self._sending: dict[str, int] = {}  # user id -> sends under way
        self._sent = asyncio.Condition()
        self._profile_wait: OrderedDict[str, float] = OrderedDict()
        self._profile_busy: set[str] = set()

    def __repr__(self) -> str:
        return f"ZaloConnector({self.channel_id!r}, oa_id={self.settings.oa_id!r})"

    async def _close_client(self) -> None:
        await self.client.aclose()

    async def _check_credentials(self) -> None:
        token = self._tokens.access
        try:
            await self.client.check_token(token)
        except TokenRejected:
            await self._refresh(token)
            await self.client.check_token(self._tokens.access)

    async def start(self, sink: Sink) -> None:
        await super().start(sink)
        await self._load_tokens()
        self.set_health(HealthState.CONNECTED)

    # --- webhook ------------------------------------------------------------------------

    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return json_error(405, "method_not_allowed", "Zalo events are POSTed")
        body = await read_body(request, self.settings.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        header = request.headers.get(SIGNATURE_HEADER)
        refused = json_error(
            401, "invalid_signature", f"{SIGNATURE_HEADER} is missing or does not match"
        )
        if not header:
            log.warning("channel %s: webhook without %s", self.channel_id, SIGNATURE_HEADER)
            return refused
        # The signature covers fields of the body (app_id, timestamp): it is read first.
        try:
            data = decode_body(body)
            if not self._signed(body, header, data):
                log.warning("channel %s: webhook with a wrong signature", self.channel_id)
                return refused
            if (stale := self._stale(data)) is not None:
                return stale
            event = event_of(data)
        except PayloadError as exc:
            log.info("channel %s: refused a webhook body: %s", self.channel_id, exc.message)
            return json_error(400, exc.code, exc.message)
        if not await self._handle_safely(event, event.kind, event.raw):
            # Not stored: Zalo sends the event again, and it is deduplicated then.
            return json_error(503, "retry_later", "the event could not be stored")
        return web.json_response({"received": 1})

    def _stale(self, data: dict[str, Any]) -> web.Response | None:
        """The refusal of an event sent too long ago (or ahead): a replay, kept nowhere."""
        sent = sent_at(data)
        if sent is None:
            log.warning("channel %s: webhook with an unreadable timestamp", self.channel_id)
            return json_error(
                400, "invalid_timestamp", "timestamp must be milliseconds since the epoch"
            )
        off = (self._clock() - sent).total_seconds()
        limit = self.settings.max_event_age_seconds
        if abs(off) <= limit:
            return None
        when = f"{off:.0f} s ago" if off > 0 else f"{-off:.0f} s ahead"
        log.warning(
            "channel %s: refused an event sent %s (max_event_age_seconds = %g)",
            self.channel_id,
            when,
            limit,
        )
        return json_error(
            400,
            "stale_event",
            f"the event was sent {when}; events more than {limit:g} s from now are refused",
        )

    def _signed(self, body: bytes, header: str, data: dict[str, Any]) -> bool:
        app_id, timestamp = signature_fields(data)
        if signature_ok(body, header, first=app_id, timestamp=timestamp, secret=self._secret):
            return True
        # Some code in the wild puts the OA id first (channels.md 2.2, unverified): it is
        # accepted, and logged, so it shows whether Zalo ever signs that way.
        if signature_ok(
            body, header, first=self.settings.oa_id, timestamp=timestamp, secret=self._secret
        ):
            log.info("channel %s: webhook signature matched with oa_id first", self.channel_id)
            return True
        return False

    async def _handle(self, event: WebhookEvent) -> None:
        if isinstance(event, UserMessage | OaMessage | Delivery | SubmittedInfo) and (
            event.oa_id != self.settings.oa_id
        ):
            reason = f"OA {event.oa_id[:64]} is not the one configured on this channel"
            await self._keep_raw(event.kind, event.raw, reason)
        elif isinstance(event, UserMessage):
            await self._user_message(event)
        elif isinstance(event, OaMessage):
            await self._oa_message(event)
        elif isinstance(event, Delivery):
            status = MessageStatus.READ if event.status == "read" else MessageStatus.DELIVERED
            await self.sink.update_status(
                StatusUpdate(
                    channel_id=self.channel_id, status=status, external_ids=list(event.msg_ids)
                )
            )
        elif isinstance(event, SubmittedInfo):
            # The phone is the Zalo account's own: a verified value, which links the
            # contact to the same person's other channels.
            await self.sink.update_identity(
                self.channel_id,
                Sender(
                    external_id=event.user_id,
                    display_name=event.name,
                    phone=event.phone,
                    verified=event.phone is not None,
                ),
            )
        elif isinstance(event, Unhandled):
            await self._keep_raw(event.kind, event.raw, event.reason)
        else:
            await self._keep_raw(event.kind, event.raw, f"invalid {event.kind}: {event.reason}")

    async def _user_message(self, event: UserMessage) -> None:
        result = await self.sink.ingest(
            InboundMessage(
                channel_id=self.channel_id,
                external_id=event.msg_id,
                sender=Sender(external_id=event.user_id),
                parts=list(event.parts),
                reply_to_external_id=event.quote_msg_id,
                sent_at=event.sent_at,
            )
        )
        if not result.duplicate:
            self._refresh_profile(event.user_id)

    async def _oa_message(self, event: OaMessage) -> None:
        """The OA sent a message: ours (already stored) or typed elsewhere (stored now as
        an outbound message, so the history shows what the customer saw)."""
        if event.msg_id not in self._ours and self._sending.get(event.user_id):
            async with self._sent:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._sent.wait_for(lambda: not self._sending.get(event.user_id)),
                        ECHO_WAIT_SECONDS,
                    )
        if event.msg_id in self._ours or await self.sink.known(self.channel_id, event.msg_id):
            log.debug("channel %s: echo of our own message skipped", self.channel_id)
            return
        await self.sink.ingest(
            InboundMessage(
                channel_id=self.channel_id,
                external_id=event.msg_id,
                sender=Sender(external_id=event.user_id),
                parts=list(event.parts),
                direction=Direction.OUTBOUND,
                reply_to_external_id=event.quote_msg_id,
                sent_at=event.sent_at,
            )
        )

    # --- customers' profiles ------------------------------------------------------------

    def _refresh_profile(self, user_id: str) -> None:
        """Fetch the customer's name and avatar in the background when due."""
        if user_id in self._profile_busy or self._closing:
            return
        if self._profile_wait.get(user_id, 0.0) > self._clock().timestamp():
            return
        self._profile_busy.add(user_id)
        self._spawn(self._fetch_profile(user_id))

    async def _fetch_profile(self, user_id: str) -> None:
        now = self._clock().timestamp()
        refresh = self.settings.profile_refresh_hours * 3600
        wait = refresh
        try:
            profile = await self._api(lambda token: self.client.profile(token, user_id))
            if profile.name or profile.avatar_url or profile.phone:
                await self.sink.update_identity(
                    self.channel_id,
                    Sender(
                        external_id=user_id,
                        display_name=profile.name,
                        avatar_url=profile.avatar_url,
                        # shared_info: what the user chose to share from their account
                        phone=profile.phone,
                        verified=profile.phone is not None,
                    ),
                )
        except SendError as exc:
            log.info("channel %s: profile not fetched: %s", self.channel_id, exc.code)
            wait = min(refresh, PROFILE_RETRY_SECONDS)
        except Exception:
            log.exception("channel %s: profile fetch failed", self.channel_id)
            wait = min(refresh, PROFILE_RETRY_SECONDS)
        finally:
            self._profile_busy.discard(user_id)
            self._profile_wait[user_id] = now + wait
            while len(self._profile_wait) > CUSTOMERS_CACHED:
                self._profile_wait.popitem(last=False)

    # --- outbound -----------------------------------------------------------------------

    window_ends: ClassVar[tuple[timedelta, ...]] = (render.CS_WINDOW,)

    def now(self) -> datetime:
        return self._clock()

    def reply_window(self, last_inbound_at: datetime | None, *, phone: str | None) -> ReplyWindow:
        zns = bool(self.settings.zns_templates) and phone is not None
        return render.reply_window(last_inbound_at, self._clock(), zns=zns)

    def check_parts(self, parts: Sequence[Part], *, phone: str | None) -> None:
        templates = self.settings.zns_templates
        for part in parts:
            if not isinstance(part, TemplatePart):
                continue
            if not templates:
                raise Invalid(
                    f"channel {self.channel_id} has no ZNS templates (zns_templates)",
                    code="unsupported_part",
                    details={"part": "template"},
                )
            if part.name not in templates:
                raise Invalid(
                    f"no ZNS template named {part.name[:128]!r} on channel {self.channel_id}",
                    code="unknown_template",
                    details={"templates": sorted(templates)},
                )
            if phone is None:
                raise Invalid(
                    "a ZNS template goes to the customer's phone, and it is not known",
                    code="phone_unknown",
                )

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        user_id = outbound.recipient.external_id
        message_id = outbound.message.id
        language = outbound.conversation.language
        steps = render.plan(outbound.message.parts, language)
        if not steps:
            raise PermanentError("nothing in this message can be sent", code="empty_message")
        # A reply that takes several requests: if a later one fails and is retried, the
        # ones that already went out are not sent twice.
        key = f"send:{message_id}"
        progress = await self.sink.load_state(self.channel_id, key) if len(steps) > 1 else None
        ids: list[str | None] = []
        if isinstance(progress, dict) and isinstance(progress.get("ids"), list):
            ids = [i if isinstance(i, str) else None for i in progress["ids"]][: len(steps)]
        quote = outbound.reply_to_external_id
        self._sending[user_id] = self._sending.get(user_id, 0) + 1
        try:
            for index in range(len(ids), len(steps)):
                step = steps[index]
                try:
                    if isinstance(step, render.TemplateStep):
                        sent = await self._send_template(step.part, outbound)
                    else:
                        if isinstance(step, render.TextStep):
                            body = render.text_body(
                                user_id, step.text, quote=quote if index == 0 else None
                            )
                        elif isinstance(step, render.ChoicesStep):
                            body = render.choices_body(user_id, step.part)
                        else:
                            body = await self._media_body(user_id, step.part, language)
                        sent = await self._api(functools.partial(self._send_cs, body))
                except SendError as exc:
                    if ids and exc.retryable:
                        await self.sink.save_state(self.channel_id, key, {"ids": ids})
                    raise
                if sent is not None:
                    self._remember_ours(sent)
                ids.append(sent)
        finally:
            self._sending[user_id] -= 1
            if not self._sending[user_id]:
                del self._sending[user_id]
            async with self._sent:
                self._sent.notify_all()
        if progress is not None:
            await self.sink.save_state(self.channel_id, key, None)
        last = next((i for i in reversed(ids) if i), None)
        if last is not None and await self.sink.known(self.channel_id, last):
            # An echo of this message was stored before the send returned (another
            # process took the webhook): that copy keeps the id.
            last = None
        return SendReceipt(external_id=last, status=MessageStatus.SENT)

    async def _send_cs(self, body: dict[str, Any], token: SecretStr) -> str | None:
        return await self.client.send_cs(token, body)

    async def _send_template(self, part: TemplatePart, outbound: OutboundMessage) -> str | None:
        """A ZNS template to the customer's phone; its msg_id is what ZNS delivery news
        (user_received_message) names."""
        recipient = outbound.recipient.external_id
        phone = outbound.phone or (recipient if recipient.startswith("+") else None)
        templates = self.settings.zns_templates
        if phone is None or part.name not in templates:
            raise PermanentError(
                "the ZNS template or the customer's phone is no longer known",
                code="template_unavailable",
            )
        body = render.zns_body(part, phone, templates, tracking_id=outbound.message.id)
        return await self._api(lambda token: self.client.send_zns(token, body))

    def _remember_ours(self, message_id: str) -> None:
        self._ours[message_id] = None
        while len(self._ours) > OURS_REMEMBERED:
            self._ours.popitem(last=False)

    async def _media_body(
        self, user_id: str, part: MediaPart, language: str | None
    ) -> dict[str, Any]:
        """The CS message for an image or file part: uploaded first when the gateway
        keeps its bytes; an image elsewhere goes by URL; anything Zalo cannot take goes
        as a text line naming it."""
        limit = max(self.settings.max_image_bytes, self.settings.max_file_bytes)
        content = await self.sink.read_attachment(part.url, limit) if part.url else None
        if content is None:
            if part.type == "image" and part.url and part.url.startswith("https://"):
                return render.media_body(user_id, url=part.url)
            return render.text_body(user_id, as_text(part, language))
        upload = render.upload_for(part, content)
        if upload is None:
            return render.text_body(user_id, as_text(part, language))
        most = (
            self.settings.max_file_bytes if upload.kind == "file" else self.settings.max_image_bytes
        )
        if len(content) > most:
            return render.text_body(user_id, as_text(part, language))
        ident = await self._api(
            lambda token: self.client.upload(
                token, upload.kind, content, name=upload.name, mime=upload.mime
            )
        )
        if upload.kind == "file":
            return render.file_body(user_id, ident)
        return render.media_body(
            user_id,
            attachment_id=ident,
            gif=upload.kind == "gif",
            width=upload.width,
            height=upload.height,
        )

    # --- tokens -------------------------------------------------------------------------

    async def _load_tokens(self) -> None:
        found = await self._stored.load(self.sink, self.channel_id)
        if found is not None:
            self._tokens = found

    async def _token(self) -> SecretStr:
        """The access token to call with, refreshed first when it is about to expire."""
        tokens = self._tokens
        now = self._clock().timestamp()
        due = (
            tokens.expires_at is not None
            and now >= tokens.expires_at - self.settings.refresh_ahead_seconds
        )
        if due and now >= self._early_refresh_after:
            try:
                await self._refresh(tokens.access)
            except SendError as exc:
                # The current token may still work: the call decides.
                self._early_refresh_after = now + EARLY_REFRESH_PAUSE
                log.warning("channel %s: early token refresh failed: %s", self.channel_id, exc.code)
        return self._tokens.access

    async def _refresh(self, seen: SecretStr) -> None:
        """Replace the access token ``seen`` with a new pair; one refresh at a time, in
        this process and among every process sharing the store (the refresh token is
        single use: two refreshing at once would leave one with a spent token)."""
        async with self._refresh_lock:
            if self._tokens.access.get_secret_value() != seen.get_secret_value():
                return  # refreshed meanwhile
            lease = f"zalo-tokens:{self.channel_id}"
            await claim_refresh(self.sink, lease, "Zalo token")
            try:
                # Another process may have refreshed already: its pair wins.
                await self._load_tokens()
                if self._tokens.access.get_secret_value() != seen.get_secret_value():
                    return
                pair: TokenPair = await self.client.refresh(
                    self.settings.app_id, self.settings.app_secret, self._tokens.refresh
                )
                tokens = Tokens(
                    pair.access_token,
                    pair.refresh_token,
                    self._clock().timestamp() + pair.expires_in,
                )
                await self._stored.save(self.sink, self.channel_id, tokens)  # durable first
            finally:
                await self.sink.release(lease)
            self._tokens = tokens
            self._early_refresh_after = 0.0
            log.info("channel %s: Zalo access token refreshed", self.channel_id)

    async def _api(self, call: Callable[[SecretStr], Awaitable[T]]) -> T:
        """Make a call with the access token, refreshing it once when Zalo refuses it,
        and keep the channel's health in step with the outcome."""
        return await self._tracked(self._with_token(call), config_prefix="config:")

    async def _with_token(self, call: Callable[[SecretStr], Awaitable[T]]) -> T:
        token = await self._token()
        try:
            return await call(token)
        except TokenRejected:
            await self._refresh(token)
            try:
                return await call(self._tokens.access)
            except TokenRejected as exc:
                raise AuthError(
                    f"a fresh access token was refused too: {exc.reason}", code=exc.code
                ) from None
