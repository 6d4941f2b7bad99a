"""The connector contract.

A connector speaks one channel's protocol and nothing else. Three shapes exist:

- webhook connectors (Facebook, Zalo): the provider calls ``/webhooks/{channel_id}``;
  the gateway hands the request to :meth:`WebhookConnector.handle_webhook`;
- pollers (IMAP): :meth:`Connector.start` runs a task that fetches and reconnects;
- socket connectors (webchat): the gateway hands WebSocket upgrades to
  :meth:`SocketConnector.handle_socket`.

All of them give normalised inbound events (the envelope of :mod:`kernel.envelope`) to
the :class:`Sink` they were started with and know nothing about storage or routing.
Outbound, :meth:`Connector.send` receives a message whose parts were already degraded to
the connector's :attr:`capabilities`, and raises the errors of :mod:`connectors.errors`.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from connectors.windows import UNLIMITED
from kernel.envelope import (
    InboundMessage,
    IngestResult,
    OutboundMessage,
    Sender,
    SendReceipt,
    StatusUpdate,
)
from kernel.errors import Invalid
from kernel.ids import ChannelId, ContactId, ConversationId, MessageId
from kernel.models import (
    ChannelType,
    Identity,
    MediaPart,
    Message,
    Part,
    ReplyWindow,
    TemplatePart,
    utcnow,
)

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)


class Capability(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    FILE = "file"
    STICKER = "sticker"
    LOCATION = "location"
    LINK = "link"
    # Answers to pick from shown as the channel's own buttons or chips.
    CHOICES = "choices"
    TEMPLATE = "template"  # provider-approved templates (Zalo ZNS)
    TYPING = "typing"
    READ_RECEIPTS = "read_receipts"


class HealthState(StrEnum):
    """Connection health, a fixed vocabulary shown on /readyz and in channel events."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    TRANSIENT_DISCONNECT = "TRANSIENT_DISCONNECT"
    BAD_CREDENTIALS = "BAD_CREDENTIALS"
    BAD_CONFIG = "BAD_CONFIG"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class ChannelHealth:
    state: HealthState
    detail: str | None = None
    since: datetime = field(default_factory=utcnow)


class Sink(Protocol):
    """What a connector may ask of the gateway."""

    async def ingest(self, message: InboundMessage) -> IngestResult:
        """Store an inbound message durably; returns only once it is committed."""

    async def update_status(self, update: StatusUpdate) -> list[MessageId]:
        """Apply delivery/read/failed news to outbound messages."""

    async def update_identity(
        self, channel_id: ChannelId, sender: Sender, link_to: Sender | None = None
    ) -> ContactId:
        """Create or update the contact behind a channel identity (profile, identify).

        With ``link_to``, the two identities' contacts become one (the older survives):
        used when the channel proves both are the same person.
        """

    async def history(
        self,
        channel_id: ChannelId,
        external_id: str,
        *,
        before: MessageId | None = None,
        after: MessageId | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages of this channel identity's contact on this channel, oldest first."""

    async def open_conversation(
        self, channel_id: ChannelId, external_id: str
    ) -> ConversationId | None:
        """The open conversation of this channel identity's contact on this channel."""

    async def react(
        self,
        channel_id: ChannelId,
        message_external_id: str,
        reactor_external_id: str,
        *,
        emoji: str | None = None,
        reaction: str | None = None,
        on: bool = True,
    ) -> MessageId | None:
        """A reaction set (or with ``on=False`` removed) on a message of this channel, by
        a customer or by the business side; None when the message is unknown."""

    async def keep_raw(
        self, channel_id: ChannelId, kind: str, payload: str | bytes, reason: str
    ) -> None:
        """Keep a provider event the connector cannot use, as it came, and log it."""

    async def confirm_sent(
        self, channel_id: ChannelId, message_id: MessageId, external_id: str
    ) -> bool:
        """The channel shows that our message went out (e.g. an echo carrying our id).
        False when this gateway has no such message."""

    async def save_attachment(
        self, channel_id: ChannelId, data: bytes, *, name: str | None, mime: str | None
    ) -> MediaPart:
        """Keep a received file; returns the part that points at it. Raises ValueError
        when the file is over the configured size limit."""

    async def read_attachment(self, url: str, limit: int) -> bytes | None:
        """The bytes of a file this gateway keeps, given the URL of its MediaPart; None
        when the URL is not one of ours, the file is gone, or it is over ``limit``."""

    async def attachment_part(self, channel_id: ChannelId, attachment_id: str) -> MediaPart | None:
        """The part that sends a file kept for this channel (one a customer uploaded);
        None when there is no such file, or it was kept for another channel."""

    async def known(self, channel_id: ChannelId, external_id: str) -> bool:
        """Whether a message with this external id is already stored (a connector
        re-reading its source can skip work, such as keeping attachments, for it)."""

    async def load_state(self, channel_id: ChannelId, key: str) -> Any:
        """A value the connector saved with save_state (JSON-compatible), or None."""

    async def save_state(self, channel_id: ChannelId, key: str, value: Any) -> None:
        """Durably keep a small JSON-compatible value (e.g. an IMAP checkpoint)."""

    def typing(self, channel_id: ChannelId, external_id: str, on: bool) -> None:
        """The customer is typing (ephemeral, never stored)."""

    async def claim(self, name: str) -> asyncio.Event | None:
        """Work one process at a time may do, among every process sharing the store
        (reading a mailbox, refreshing a single-use token): None while another process
        does it; otherwise an event that is set when this process must stop at once."""

    async def release(self, name: str) -> None:
        """Done with work taken by ``claim``."""

    def health_changed(self, channel_id: ChannelId, health: ChannelHealth) -> None:
        """The connector's health moved to a new state."""

    async def thread_control(
        self, channel_id: ChannelId, external_id: str, owner_app_id: str | None, detail: str | None
    ) -> None:
        """The channel moved control of the customer's thread: to this gateway (None,
        the humans) or to another app (a bot platform)."""


class Connector(abc.ABC):
    """Base of every connector. Subclasses set :attr:`type` and :attr:`capabilities`."""

    type: ClassVar[ChannelType]
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.TEXT})
    # How long after the customer's last message each reply window of the channel ends
    # (none: the channel has no window); conversation.window_closing is announced before.
    window_ends: ClassVar[tuple[timedelta, ...]] = ()

    def __init__(self, channel_id: ChannelId) -> None:
        self.channel_id = channel_id
        self._sink: Sink | None = None
        self._health = ChannelHealth(HealthState.CONNECTING)

    @property
    def sink(self) -> Sink:
        if self._sink is None:
            raise RuntimeError(f"connector {self.channel_id} used before start()")
        return self._sink

    @property
    def health(self) -> ChannelHealth:
        return self._health

    def set_health(self, state: HealthState, detail: str | None = None) -> None:
        """Move to a new health state; the gateway announces changes as events."""
        if state == self._health.state and detail == self._health.detail:
            return
        self._health = ChannelHealth(state, detail)
        log.info("channel %s is %s%s", self.channel_id, state, f": {detail}" if detail else "")
        if self._sink is not None:
            self._sink.health_changed(self.channel_id, self._health)

    async def start(self, sink: Sink) -> None:
        """Begin taking traffic and report it through ``sink``."""
        self._sink = sink

    @abc.abstractmethod
    async def send(self, outbound: OutboundMessage) -> SendReceipt:
        """Deliver one message in the channel's own wire format."""

    def now(self) -> datetime:
        """The connector's clock (reply windows are counted on it)."""
        return utcnow()

    def reply_window(self, last_inbound_at: datetime | None, *, phone: str | None) -> ReplyWindow:
        """Whether the business may write now, given when the customer last wrote (None:
        never seen) and their phone: channels without a window are ``unlimited``."""
        return UNLIMITED

    def check_parts(self, parts: Sequence[Part], *, phone: str | None) -> None:
        """Raise kernel.errors.Invalid for parts this channel can never send (checked before
        a message is stored): by default a template, which only some channels have."""
        for part in parts:
            if isinstance(part, TemplatePart):
                raise Invalid(
                    f"channel {self.channel_id} ({self.type}) has no provider templates",
                    code="unsupported_part",
                    details={"part": "template"},
                )

    async def send_typing(self, recipient: Identity, on: bool) -> None:  # noqa: B027
        """Show the agent typing, where the channel can (Capability.TYPING)."""

    async def mark_read(self, recipient: Identity) -> None:  # noqa: B027
        """Tell the customer their messages were seen, where the channel can
        (Capability.READ_RECEIPTS)."""

    async def hand_over(  # noqa: B027
        self, recipient: Identity, app_id: str | None, metadata: str | None
    ) -> None:
        """Where the channel has a handover protocol (Messenger): pass control of the
        customer's thread to another app (``app_id``, a bot's), or take it (None)."""

    async def aclose(self) -> None:
        self.set_health(HealthState.STOPPED)


class WebhookConnector(Connector):
    """A connector the provider calls over HTTP at ``/webhooks/{channel_id}``."""

    @abc.abstractmethod
    async def handle_webhook(self, request: web.Request) -> web.StreamResponse:
        """Verify, parse, hand to the sink, and answer the provider."""


class SocketConnector(Connector):
    """A connector whose customers hold a socket open to the gateway."""

    @abc.abstractmethod
    async def handle_socket(self, request: web.Request) -> web.StreamResponse:
        """Serve one customer's WebSocket from handshake to close."""

    @abc.abstractmethod
    def open_sockets(self) -> int:
        """How many customers' sockets are open."""

    @abc.abstractmethod
    async def close_sockets(self) -> None:
        """Close every customer's socket (the gateway is stopping)."""

    def relay(self, message: Message) -> None:
        """A message of this channel was stored by another process sharing the store (an
        agent's reply sent there, the customer writing from a tab open there): show it on
        the sockets this process holds, unless it was shown here already."""


class PollingConnector(Connector):
    """A connector that fetches from the provider in a task of its own, reconnecting."""

    backoff_initial = 1.0
    backoff_max = 300.0
    standby_poll = 1.0  # how often a process waiting for the source tries to take it

    def __init__(self, channel_id: ChannelId) -> None:
        super().__init__(channel_id)
        self._task: asyncio.Task[None] | None = None
        self._work: asyncio.Task[None] | None = None

    async def start(self, sink: Sink) -> None:
        await super().start(sink)
        self._task = asyncio.create_task(self._run(), name=f"poller:{self.channel_id}")

    @abc.abstractmethod
    async def run_once(self) -> None:
        """Connect and fetch until the connection ends; raise to trigger a reconnect."""

    async def _run(self) -> None:
        # One process at a time reads the source (a mailbox read by two would be read
        # twice); another takes over when this one stops or dies.
        while True:
            lost = await self._claim()
            self._work = work = asyncio.create_task(self._poll(), name=f"poll:{self.channel_id}")
            watch = asyncio.create_task(lost.wait())
            try:
                await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                watch.cancel()
                await cancel_and_wait(work)
            log.warning(
                "channel %s: no longer read here (another process took over)", self.channel_id
            )

    async def _claim(self) -> asyncio.Event:
        name = f"poll:{self.channel_id}"
        waiting = False
        while True:
            try:
                lost = await self.sink.claim(name)
            except Exception as exc:  # the store is away: try again
                log.debug("channel %s: claiming failed: %s", self.channel_id, exc)
                lost = None
            if lost is not None:
                return lost
            if not waiting:
                waiting = True
                self.set_health(HealthState.CONNECTED, "read by another replica")
            await asyncio.sleep(self.standby_poll)

    async def _poll(self) -> None:
        delay = self.backoff_initial
        while True:
            self.set_health(HealthState.CONNECTING)
            try:
                await self.run_once()
                delay = self.backoff_initial
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure means: reconnect later
                log.warning("channel %s: %s; retrying in %.0fs", self.channel_id, exc, delay)
                if self.health.state not in (HealthState.BAD_CREDENTIALS, HealthState.BAD_CONFIG):
                    self.set_health(HealthState.TRANSIENT_DISCONNECT, type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def aclose(self) -> None:
        await cancel_and_wait(self._task)
        await cancel_and_wait(self._work)  # cancelled again, _run may not have waited for it
        await super().aclose()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a task and wait until it has ended.

    Cancelled once, a task can still go on: Python 3.11's asyncio.wait_for (used
    throughout client libraries) swallows a cancellation that meets a completing
    operation. So cancel again until it is done.
    """
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    if task is not None and not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it as never retrieved
