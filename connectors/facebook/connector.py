"""The Messenger connector: webhook in (verify, parse, store, answer), Send API out."""

from __future__ import annotations

import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar, assert_never

import httpx
from aiohttp import web

from connectors.base import Capability, HealthState, Sink
from connectors.errors import (
    PermanentError,
    SendError,
)
from connectors.facebook import render
from connectors.facebook.client import GraphClient
from connectors.facebook.parse import (
    SIGNATURE_HEADER,
    CustomerMessage,
    Delivery,
    Echo,
    Invalid,
    PayloadError,
    ReactionEvent,
    Read,
    ThreadControl,
    Unhandled,
    WebhookEvent,
    parse_batch,
    signature_ok,
)
from connectors.facebook.settings import FacebookSettings, PageSettings
from connectors.provider import ProviderConnector, json_error, read_body
from kernel.envelope import (
    InboundMessage,
    IngestResult,
    OutboundMessage,
    Sender,
    SendReceipt,
    StatusUpdate,
)
from kernel.ids import ChannelId, MessageId
from kernel.models import (
    ChannelType,
    Direction,
    Identity,
    MediaPart,
    MessageStatus,
    Part,
    ReplyWindow,
    utcnow,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

CUSTOMERS_CACHED = 50_000
STICKERS_REMEMBERED = 10_000
THROTTLE_KEYS = 10_000
PROFILE_RETRY_SECONDS = 3600.0
# The Attachment Upload API takes assets up to 25 MB (channels.md 1.6).
UPLOAD_LIMIT = 25 * 1024 * 1024


class FacebookConnector(ProviderConnector):
    type: ClassVar[ChannelType] = ChannelType.FACEBOOK
    # Stickers, links and locations cannot be sent through the Send API by URL: the shared
    # degrade step turns them into text (Messenger previews links in text itself).
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.TEXT,
            Capability.IMAGE,
            Capability.AUDIO,
            Capability.VIDEO,
            Capability.FILE,
            Capability.CHOICES,
            Capability.TYPING,
            Capability.READ_RECEIPTS,
        }
    )

    def __init__(
        self,
        settings: FacebookSettings,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ChannelId(settings.id))
        self.settings = settings
        self.graph = GraphClient(
            http,
            settings.api_base,
            app_secret=settings.app_secret if settings.appsecret_proof else None,
        )
        self._clock = clock
        self._monotonic = monotonic
        self._app_secret = settings.app_secret.get_secret_value().encode()
        self._pages = {p.id: p for p in settings.pages}
        # psid -> {"page": page id, "profile_at": epoch seconds}, mirrored in channel state.
        self._customers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._profile_wait: dict[str, float] = {}  # psid -> no profile fetch before
        self._profile_busy: set[str] = set()
        self._stickers: OrderedDict[tuple[str, str, str, str], str] = OrderedDict()
        self._throttle: dict[tuple[str, str], float] = {}
        self._typing: set[str] = set()

    def __repr__(self) -> str:
        return f"FacebookConnector({self.channel_id!r}, pages={sorted(self._pages)})"

    async def _close_client(self) -> None:
        await self.graph.aclose()

    async def _check_credentials(self) -> None:
        for page in self.settings.pages:
            await self.graph.check_token(page.access_token)

    async def start(self, sink: Sink) -> None:
        await super().start(sink)
        self.set_health(HealthState.CONNECTED)

    # --- webhook: GET verification ------------------------------------------------------

    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return self._verify_subscription(request)
        if request.method != "POST":
            return json_error(405, "method_not_allowed", "use GET or POST")
        return await self._receive(request)

    def _verify_subscription(self, request: web.Request) -> web.StreamResponse:
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token")
        expected = self.settings.verify_token.get_secret_value().encode()
        if (
            mode != "subscribe"
            or token is None
            or not hmac.compare_digest(token.encode(), expected)
        ):
            log.info("channel %s: webhook verification refused", self.channel_id)
            return json_error(403, "verification_failed", "hub.mode or hub.verify_token is wrong")
        challenge = request.query.get("hub.challenge")
        if not challenge:
            return json_error(400, "missing_challenge", "hub.challenge is missing")
        return web.Response(text=challenge, content_type="text/plain")

    # --- webhook: POST events -------------------------------------------------------------

    async def _receive(self, request: web.Request) -> web.StreamResponse:
        body = await read_body(request, self.settings.max_body_bytes)
        if isinstance(body, web.Response):
            return body
        if not signature_ok(self._app_secret, body, request.headers.get(SIGNATURE_HEADER)):
            log.warning("channel %s: webhook with a missing or wrong signature", self.channel_id)
            return json_error(
                401, "invalid_signature", f"{SIGNATURE_HEADER} is missing or does not match"
            )
        try:
            events = parse_batch(body)
        except PayloadError as exc:
            log.info("channel %s: refused a webhook body: %s", self.channel_id, exc.message)
            return json_error(400, exc.code, exc.message)
        failed = 0
        for event in events:
            if not await self._handle_safely(event, _kind(event), event.raw):
                failed += 1
        if failed:
            # Some items are not stored: Meta retries the whole batch, and the items that
            # were stored are deduplicated then.
            return json_error(
                503, "retry_later", f"{failed} of {len(events)} events could not be stored"
            )
        return web.json_response({"received": len(events)})

    async def _handle(self, event: WebhookEvent) -> None:
        if isinstance(event, CustomerMessage):
            await self._customer_message(event)
        elif isinstance(event, Echo):
            await self._echo(event)
        elif isinstance(event, Delivery):
            if event.mids:
                await self._status(MessageStatus.DELIVERED, external_ids=list(event.mids))
            if event.watermark is not None:
                await self._status(
                    MessageStatus.DELIVERED,
                    recipient_external_id=event.psid,
                    watermark=event.watermark,
                )
        elif isinstance(event, Read):
            await self._status(
                MessageStatus.READ, recipient_external_id=event.psid, watermark=event.watermark
            )
        elif isinstance(event, ReactionEvent):
            found = await self.sink.react(
                self.channel_id,
                event.mid,
                event.psid,
                emoji=event.emoji,
                reaction=event.reaction,
                on=event.on,
            )
            if found is None:
                log.info("channel %s: reaction on a message it does not know", self.channel_id)
        elif isinstance(event, ThreadControl):
            await self._thread_control(event)
        elif isinstance(event, Unhandled):
            await self._keep_raw(event.kind, event.raw, event.reason)
        else:
            await self._keep_raw(event.kind, event.raw, f"invalid {event.kind}: {event.reason}")

    async def _status(self, status: MessageStatus, **fields: Any) -> None:
        await self.sink.update_status(
            StatusUpdate(channel_id=self.channel_id, status=status, **fields)
        )

    async def _store_page_message(
        self, event: CustomerMessage | Echo, kind: str, direction: Direction
    ) -> IngestResult | None:
        """Store a message of a page's conversation (the customer's, or the page's own sent
        from elsewhere); None when it is not stored (unknown page, repeated sticker)."""
        if event.page_id not in self._pages:
            await self._keep_raw(
                kind, event.raw, f"page {event.page_id} is not configured on this channel"
            )
            return None
        if self._same_sticker_again(event):
            return None
        await self._remember_page(event.psid, event.page_id)
        return await self.sink.ingest(
            InboundMessage(
                channel_id=self.channel_id,
                external_id=event.mid,
                sender=Sender(external_id=event.psid),
                parts=list(event.parts),
                direction=direction,
                reply_to_external_id=event.reply_to,
                sent_at=event.sent_at,
                metadata=event.metadata if isinstance(event, CustomerMessage) else {},
                # Seen on the standby channel: another app owns the thread.
                standby=event.source == "standby" and direction == Direction.INBOUND,
            )
        )

    async def _customer_message(self, event: CustomerMessage) -> None:
        result = await self._store_page_message(event, event.kind, Direction.INBOUND)
        if result is None or result.duplicate:
            return
        self._refresh_profile(event.psid, event.page_id)

    async def _echo(self, event: Echo) -> None:
        ours = event.marker is not None or (
            self.settings.app_id is not None and event.app_id == self.settings.app_id
        )
        if ours:
            marker = event.marker
            if marker is None:
                log.info("channel %s: echo of our app without our marker skipped", self.channel_id)
            elif marker.last:
                # The send receipt names the last request's mid (see send()); the echo of
                # that request confirms the message, whichever of the two arrives first.
                known = await self.sink.confirm_sent(
                    self.channel_id, MessageId(marker.message_id), event.mid
                )
                if not known:
                    await self._keep_raw("echo", event.raw, "echo names an unknown message")
            return
        # Sent from the Page inbox or by another app: a human answered outside the gateway.
        result = await self._store_page_message(event, "echo", Direction.OUTBOUND)
        if result is not None and not result.duplicate:
            self._refresh_profile(event.psid, event.page_id)

    async def _thread_control(self, event: ThreadControl) -> None:
        """Control of the thread moved: passed to this app (the humans take it from
        here), or taken by another app (its messages come on the standby channel)."""
        if event.page_id not in self._pages:
            await self._keep_raw(
                event.kind, event.raw, f"page {event.page_id} is not configured on this channel"
            )
            return
        app_id = self.settings.app_id
        if event.kind == "pass_thread_control":
            # Meta tells an app when control is passed to it; with app_id known, checked.
            ours = app_id is None or event.new_owner_app_id in (None, app_id)
        else:
            # ... and when it is taken from it, by the app now owning the thread.
            ours = app_id is not None and event.new_owner_app_id == app_id
        owner = None if ours else (event.new_owner_app_id or "")
        await self.sink.thread_control(self.channel_id, event.psid, owner, event.metadata)

    async def hand_over(
        self, recipient: Identity, app_id: str | None, metadata: str | None
    ) -> None:
        psid = recipient.external_id
        page = await self._page_for(psid)
        if app_id is None:
            action, body = "take_thread_control", render.take_thread_control(psid, metadata)
        else:
            action, body = "pass_thread_control", render.pass_thread_control(psid, app_id, metadata)
        await self._graph(self.graph.thread_control(page.id, page.access_token, action, body))

    def _same_sticker_again(self, event: CustomerMessage | Echo) -> bool:
        """Whether this is the second copy of a sticker that came as its own event.

        Meta documents each sticker arriving twice (``sticker`` and ``image``) during the
        transition; the parser folds the two when they share a message. Should they come
        as two events with different mids, the second one (same customer, sticker and
        timestamp) is dropped here.
        """
        if event.sticker_id is None or event.sent_at is None:
            return False
        key = (event.page_id, event.psid, event.sticker_id, event.sent_at.isoformat())
        seen = self._stickers.get(key)
        if seen is not None and seen != event.mid:
            log.info("channel %s: second copy of a sticker skipped", self.channel_id)
            return True
        self._stickers[key] = event.mid
        while len(self._stickers) > STICKERS_REMEMBERED:
            self._stickers.popitem(last=False)
        return False

    # --- customers: their page and profile ----------------------------------------------
    #
    # A PSID is scoped to one page, and replies must go out with that page's token. The
    # recipient Identity carries only the PSID, so the page is kept per PSID in the
    # channel's durable state (key "customer:<psid>"), written before the customer's first
    # message is stored: once Meta has our 200, a restart still knows the page. The same
    # record keeps when the profile was last fetched.

    async def _customer(self, psid: str) -> dict[str, Any]:
        state = self._customers.get(psid)
        if state is None:
            loaded = await self.sink.load_state(self.channel_id, _state_key(psid))
            state = dict(loaded) if isinstance(loaded, dict) else {}
            self._customers[psid] = state
            while len(self._customers) > CUSTOMERS_CACHED:
                self._customers.popitem(last=False)
        else:
            self._customers.move_to_end(psid)
        return state

    async def _save_customer(self, psid: str, state: dict[str, Any]) -> None:
        self._customers[psid] = state
        await self.sink.save_state(self.channel_id, _state_key(psid), state)

    async def _remember_page(self, psid: str, page_id: str) -> None:
        state = await self._customer(psid)
        if state.get("page") != page_id:
            await self._save_customer(psid, {**state, "page": page_id})

    async def _page_for(self, psid: str) -> PageSettings:
        state = await self._customer(psid)
        page = self._pages.get(str(state.get("page")))
        if page is not None:
            return page
        if len(self._pages) == 1:
            return next(iter(self._pages.values()))
        raise PermanentError(
            "the page this customer wrote to is not known (or no longer configured)",
            code="page_unknown",
        )

    def _refresh_profile(self, psid: str, page_id: str) -> None:
        """Fetch the customer's name and picture in the background when due."""
        if psid in self._profile_busy or self._closing:
            return
        if self._profile_wait.get(psid, 0.0) > self._clock().timestamp():
            return
        self._profile_busy.add(psid)
        self._spawn(self._fetch_profile(psid, page_id))

    async def _fetch_profile(self, psid: str, page_id: str) -> None:
        now = self._clock().timestamp()
        refresh = self.settings.profile_refresh_hours * 3600
        try:
            state = await self._customer(psid)
            fetched = state.get("profile_at")
            if isinstance(fetched, int | float) and now - fetched < refresh:
                self._profile_wait[psid] = fetched + refresh
                return
            page = self._pages[page_id]
            profile = await self._graph(
                self.graph.profile(psid, page.access_token), config_errors=False
            )
            await self.sink.update_identity(
                self.channel_id,
                Sender(external_id=psid, display_name=profile.name, avatar_url=profile.avatar_url),
            )
            state = await self._customer(psid)
            await self._save_customer(psid, {**state, "profile_at": now})
            self._profile_wait[psid] = now + refresh
        except SendError as exc:
            log.info("channel %s: profile not fetched: %s", self.channel_id, exc.code)
            self._profile_wait[psid] = now + min(refresh, PROFILE_RETRY_SECONDS)
        except Exception:
            log.exception("channel %s: profile fetch failed", self.channel_id)
            self._profile_wait[psid] = now + min(refresh, PROFILE_RETRY_SECONDS)
        finally:
            self._profile_busy.discard(psid)
            if len(self._profile_wait) > CUSTOMERS_CACHED:
                self._profile_wait.clear()

    # --- outbound -----------------------------------------------------------------------

    window_ends: ClassVar[tuple[timedelta, ...]] = (
        render.RESPONSE_WINDOW,
        render.HUMAN_AGENT_WINDOW,
    )

    def now(self) -> datetime:
        return self._clock()

    def reply_window(self, last_inbound_at: datetime | None, *, phone: str | None) -> ReplyWindow:
        return render.reply_window(
            last_inbound_at, self._clock(), human_agent_tag=self.settings.human_agent_tag
        )

    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        psid = outbound.recipient.external_id
        message_id = outbound.message.id
        # Raises WindowClosed before any API call when no reply may go out.
        window = render.messaging_type(
            outbound.last_inbound_at, self._clock(), human_agent_tag=self.settings.human_agent_tag
        )
        page = await self._page_for(psid)
        uploaded = await self._upload_files(page, outbound.message.parts)
        bodies = render.requests_for(
            psid,
            outbound.message.parts,
            message_id=message_id,
            window=window,
            language=outbound.conversation.language,
            uploaded=uploaded,
        )
        if not bodies:
            raise PermanentError("nothing in this message can be sent", code="empty_message")
        # A long message goes out as several requests. If a later one fails and is retried,
        # the ones that already went out are not sent twice: their progress is kept.
        key = f"send:{message_id}"
        progress = await self.sink.load_state(self.channel_id, key) if len(bodies) > 1 else None
        mids: list[str | None] = []
        if isinstance(progress, dict) and isinstance(progress.get("mids"), list):
            mids = [m if isinstance(m, str) else None for m in progress["mids"]][: len(bodies)]
        for body in bodies[len(mids) :]:
            try:
                mids.append(await self._graph(self.graph.send(page.id, page.access_token, body)))
            except SendError as exc:
                if mids and exc.retryable:
                    await self.sink.save_state(self.channel_id, key, {"mids": mids})
                raise
        if progress is not None:
            await self.sink.save_state(self.channel_id, key, None)
        self._typing.discard(psid)  # Messenger hides the indicator when a message arrives
        # The receipt names the LAST request's mid: Messenger delivers in order, so when the
        # last part is delivered or read, the whole message is.
        last = next((m for m in reversed(mids) if m), None)
        return SendReceipt(external_id=last, status=MessageStatus.SENT)

    async def _upload_files(self, page: PageSettings, parts: Sequence[Part]) -> dict[int, str]:
        """Files this gateway keeps go up through the Attachment Upload API (Meta could
        not fetch them by URL: they are not public); index of the part -> attachment_id."""
        uploaded: dict[int, str] = {}
        for index, part in enumerate(parts):
            if not isinstance(part, MediaPart) or not render.sendable(part) or not part.url:
                continue
            content = await self.sink.read_attachment(part.url, UPLOAD_LIMIT)
            if content is None:
                continue  # not one of ours: sent by URL
            name = part.name or part.attachment_id or "file"
            mime = part.mime or "application/octet-stream"
            uploaded[index] = await self._graph(
                self.graph.upload(
                    page.id, page.access_token, part.type, content, name=name, mime=mime
                )
            )
        return uploaded

    async def send_typing(self, recipient: Identity, on: bool) -> None:
        psid = recipient.external_id
        if on:
            if not self._throttled("typing_on", psid):
                self._typing.add(psid)
                await self._sender_action(psid, "typing_on")
        elif psid in self._typing:
            self._typing.discard(psid)
            await self._sender_action(psid, "typing_off")

    async def mark_read(self, recipient: Identity) -> None:
        if not self._throttled("mark_seen", recipient.external_id):
            await self._sender_action(recipient.external_id, "mark_seen")

    def _throttled(self, action: str, psid: str) -> bool:
        """True when ``action`` went to ``psid`` less than the throttle interval ago."""
        now = self._monotonic()
        gap = self.settings.typing_throttle_seconds
        last = self._throttle.get((action, psid))
        if last is not None and now - last < gap:
            return True
        if len(self._throttle) >= THROTTLE_KEYS:
            self._throttle = {k: t for k, t in self._throttle.items() if now - t < gap}
        self._throttle[(action, psid)] = now
        return False

    async def _sender_action(self, psid: str, action: render.SenderAction) -> None:
        # Typing and seen are hints: a failure is logged, never raised to the agent's call.
        try:
            page = await self._page_for(psid)
            await self._graph(
                self.graph.sender_action(
                    page.id, page.access_token, render.sender_action(psid, action)
                )
            )
        except SendError as exc:
            log.info("channel %s: %s not sent: %s", self.channel_id, action, exc.code)
        except Exception:
            log.exception("channel %s: %s failed", self.channel_id, action)

    # --- health -------------------------------------------------------------------------

    async def _graph(self, call: Awaitable[T], *, config_errors: bool = True) -> T:
        """Await a Graph call and keep the channel's health in step with its outcome.

        ``config_errors=False`` for calls whose permission errors concern one customer
        (a profile Meta will not show) rather than the channel's setup.
        """
        return await self._tracked(
            call, config_prefix="permission_denied" if config_errors else None
        )


def _state_key(psid: str) -> str:
    return f"customer:{psid}"


def _kind(event: WebhookEvent) -> str:
    """The kind logged, and kept with an event that could not be handled."""
    if isinstance(event, Unhandled | Invalid | CustomerMessage):
        return event.kind
    if isinstance(event, Echo):
        return "echo"
    if isinstance(event, Delivery):
        return "delivery"
    if isinstance(event, Read):
        return "read"
    if isinstance(event, ReactionEvent):
        return "reaction"
    if isinstance(event, ThreadControl):
        return event.kind
    assert_never(event)
