"""The ingest pipeline: what connectors hand their traffic to (their Sink).

provider -> connector -> ingest (one transaction: dedupe, identity, thread, message, events)
-> the connector acknowledges -> routing -> events fan out (webhooks, SSE).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from connectors.base import ChannelHealth, HealthState
from gateway.attachments import Attachments
from gateway.domain.inbox import Inbox
from gateway.domain.media import fetchable
from gateway.domain.outbox import Outbox
from gateway.events import EventBus
from gateway.metrics import Metrics
from gateway.queue_runner import QueueRunner
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from kernel.envelope import InboundMessage, IngestResult, Sender, StatusUpdate
from kernel.errors import NotFound
from kernel.ids import ChannelId, ContactId, ConversationId, MessageId
from kernel.models import (
    Author,
    AuthorType,
    ChannelType,
    ConversationStatus,
    MediaPart,
    Message,
    Reaction,
    utcnow,
)

log = logging.getLogger(__name__)


class Pipeline:
    """Implements :class:`connectors.base.Sink` for every connector."""

    def __init__(
        self,
        store: Store,
        inbox: Inbox,
        outbox: Outbox,
        queue: QueueRunner,
        bus: EventBus,
        channel_types: Callable[[], Mapping[ChannelId, ChannelType]],
        metrics: Metrics,
        attachments: Attachments,
    ) -> None:
        self.store = store
        self.inbox = inbox
        self.outbox = outbox
        self.attachments = attachments
        self.queue = queue
        self.bus = bus
        self._channel_types = channel_types
        self.metrics = metrics
        self._background: set[asyncio.Task[object]] = set()
        # Told when a channel reports CONNECTED (the outbound worker sends what waited).
        self.on_connected: Callable[[ChannelId], Coroutine[Any, Any, None]] | None = None
        # Told when the gateway wrote to a customer (an off-hours reply, a survey's next
        # question) for the send path.
        self.on_customer_messages: Callable[[], None] | None = None
        # Leases of work one process at a time does (None: the only process on its store).
        self.keeper: LeaseKeeper | None = None
        # Told when a stored message has provider files to fetch (gateway.media).
        self.on_media: Callable[[], None] | None = None

    def _type(self, channel_id: ChannelId) -> ChannelType:
        try:
            return self._channel_types()[channel_id]
        except KeyError:
            raise NotFound(f"channel {channel_id} not found", code="channel_not_found") from None

    async def ingest(self, message: InboundMessage) -> IngestResult:
        started = time.perf_counter()
        result = await self.inbox.ingest(message, self._type(message.channel_id))
        # Stored: the connector acknowledges it as soon as this returns.
        self.metrics.ingested(
            message.channel_id, time.perf_counter() - started, duplicate=result.duplicate
        )
        if result.duplicate:
            return result
        if self.on_media is not None and fetchable(result.message.parts):
            self.on_media()
        if result.notices and self.on_customer_messages is not None:
            self.on_customer_messages()
        if result.conversation_status == ConversationStatus.QUEUED:
            self.queue.kick()
        return result

    async def thread_control(
        self, channel_id: ChannelId, external_id: str, owner_app_id: str | None, detail: str | None
    ) -> None:
        conversation_id = await self.store.conversations.open_for(channel_id, external_id)
        if conversation_id is None:
            return  # nothing open yet: the next message opens it as the owner is then
        moved = await self.inbox.thread_control(conversation_id, owner_app_id, detail)
        if moved is not None and moved.status == ConversationStatus.QUEUED:
            self.queue.kick()

    async def update_status(self, update: StatusUpdate) -> list[MessageId]:
        changed = await self.inbox.update_status(update)
        return [m.id for m in changed]

    async def update_identity(
        self, channel_id: ChannelId, sender: Sender, link_to: Sender | None = None
    ) -> ContactId:
        return await self.inbox.link_identity(
            channel_id, self._type(channel_id), sender, link_to=link_to
        )

    async def history(
        self,
        channel_id: ChannelId,
        external_id: str,
        *,
        before: MessageId | None = None,
        after: MessageId | None = None,
        limit: int = 50,
    ) -> list[Message]:
        return await self.store.messages.history(
            channel_id, external_id, before=before, after=after, limit=limit
        )

    async def open_conversation(
        self, channel_id: ChannelId, external_id: str
    ) -> ConversationId | None:
        return await self.store.conversations.open_for(channel_id, external_id)

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
        contact = await self.store.contacts.of_identity(channel_id, reactor_external_id)
        reactor = (
            Author(type=AuthorType.CONTACT, id=contact)
            if contact is not None
            else Author(type=AuthorType.AGENT, id=None)  # the business side, e.g. the Page
        )
        value = Reaction(emoji=emoji, reaction=reaction, by=reactor, at=utcnow()) if on else None
        updated = await self.inbox.react(channel_id, message_external_id, value, reactor)
        return None if updated is None else updated.id

    async def keep_raw(
        self, channel_id: ChannelId, kind: str, payload: str | bytes, reason: str
    ) -> None:
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        log.warning("channel %s: kept a %s event raw: %s", channel_id, kind, reason)
        await self.store.raw_events.keep(channel_id, kind, text, reason)

    async def confirm_sent(
        self, channel_id: ChannelId, message_id: MessageId, external_id: str
    ) -> bool:
        try:
            await self.outbox.mark_sent(message_id, external_id)
        except NotFound:
            return False
        return True

    async def save_attachment(
        self, channel_id: ChannelId, data: bytes, *, name: str | None, mime: str | None
    ) -> MediaPart:
        return await self.attachments.save(channel_id, data, name=name, mime=mime)

    async def attachment_part(self, channel_id: ChannelId, attachment_id: str) -> MediaPart | None:
        record = await self.store.attachments.get(attachment_id)
        if record is None or record.channel_id != channel_id:
            return None
        return await self.attachments.part(attachment_id)

    async def known(self, channel_id: ChannelId, external_id: str) -> bool:
        return await self.store.messages.known(channel_id, external_id)

    async def read_attachment(self, url: str, limit: int) -> bytes | None:
        return await self.attachments.read(url, limit)

    async def load_state(self, channel_id: ChannelId, key: str) -> Any:
        return await self.store.channel_state.load(channel_id, key)

    async def save_state(self, channel_id: ChannelId, key: str, value: Any) -> None:
        await self.store.channel_state.save(channel_id, key, value)

    def typing(self, channel_id: ChannelId, external_id: str, on: bool) -> None:
        async def announce() -> None:
            conversation_id = await self.store.conversations.open_for(channel_id, external_id)
            if conversation_id is not None:
                self.bus.signal(
                    {
                        "type": "conversation.typing",
                        "data": {
                            "conversation_id": conversation_id,
                            "author": {"type": "contact"},
                            "state": "on" if on else "off",
                        },
                    }
                )

        self._spawn(announce())

    def health_changed(self, channel_id: ChannelId, health: ChannelHealth) -> None:
        if health.state == HealthState.CONNECTED and self.on_connected is not None:
            self._spawn(self.on_connected(channel_id))
        self._spawn(
            self.store.events.emit(
                "channel.state_changed",
                {
                    "channel_id": channel_id,
                    "state": health.state.value,
                    "detail": health.detail,
                    "since": health.since.isoformat().replace("+00:00", "Z"),
                },
            )
        )

    async def claim(self, name: str) -> asyncio.Event | None:
        lost = asyncio.Event()
        if self.keeper is None:
            return lost

        async def stop() -> None:
            lost.set()

        return lost if await self.keeper.claim(name, stop) else None

    async def release(self, name: str) -> None:
        if self.keeper is not None:
            await self.keeper.release(name)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[object]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background step failed: %r", task.exception())

    async def drain(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)
