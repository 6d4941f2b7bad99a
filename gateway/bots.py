"""Bots as the gateway runs them: each bot's webhook endpoint gets only the events of the
conversations it holds (`BotScope`), a delivery to it that dies hands the conversation to
humans, a sweep hands over those a bot left unanswered past its `timeout`, and each
handover is told to channels with a handover protocol of their own (Messenger: control
of the thread passed to the bot's app, or taken back for the humans).

The sweep and the channels' handovers run on one replica at a time, under the named
lease ``bots``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.channels import LiveChannels
from gateway.domain import bots as handovers
from gateway.domain.bots import BotRules
from gateway.events import EventBus
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.records import ConversationFilter, WebhookRecord
from gateway.store.transaction import Tx
from gateway.webhooks.delivery import Deliveries
from gateway.webhooks.sending import Outcome
from gateway.webhooks.service import bot_endpoint_id
from kernel.events import Event
from kernel.ids import ConversationId
from kernel.models import Conversation, ConversationStatus

log = logging.getLogger(__name__)

LEASE = "bots"
PAGE = 200


class BotScope:
    """Which events a bot's endpoint gets: those of the conversations it holds, and the
    one that takes a conversation away from it. Asked in log order, it follows who holds
    what from the events' conversations; it starts from what the store holds now."""

    def __init__(self, store: Store, bot_id: str) -> None:
        self.store = store
        self.bot_id = bot_id
        self.held: set[str] = set()

    async def seed(self) -> None:
        cursor: str | None = None
        held: set[str] = set()
        while True:
            page = await self.store.conversations.page(
                ConversationFilter(status=ConversationStatus.BOT), cursor, PAGE
            )
            held.update(c.id for c in page.items if c.bot_id == self.bot_id)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        self.held = held

    def wants(self, event: Event) -> bool:
        conv = event.conversation_id
        if conv is None:
            return False
        before = conv in self.held
        if event.type.startswith("conversation."):
            found = event.data.get("conversation")
            if isinstance(found, dict) and found.get("id") == conv:
                mine = found.get("status") == ConversationStatus.BOT and (
                    found.get("bot_id") == self.bot_id
                )
                if mine:
                    self.held.add(conv)
                else:
                    self.held.discard(conv)
                return before or mine
        return before


class Bots:
    def __init__(
        self,
        store: Store,
        rules: BotRules,
        deliveries: Deliveries,
        *,
        wake_queue: Callable[[], None],
        bus: EventBus | None = None,
        channels: LiveChannels | None = None,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.channels = channels
        self.rules = rules
        self.deliveries = deliveries
        self.keeper = keeper
        self._wake_queue = wake_queue
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        by_endpoint = {bot_endpoint_id(b.id): b.id for b in rules.bots}
        self._bot_of = by_endpoint
        for endpoint_id, bot_id in by_endpoint.items():
            deliveries.scopes[endpoint_id] = self._scope(bot_id)
        if rules.bots:
            deliveries.on_dead = self._dead

    def _scope(self, bot_id: str) -> Callable[[], BotScope]:
        return lambda: BotScope(self.store, bot_id)

    # --- a delivery to a bot died --------------------------------------------------------

    def _dead(self, record: WebhookRecord, event: Event, outcome: Outcome) -> None:
        bot_id = self._bot_of.get(record.id)
        if bot_id is None or event.conversation_id is None:
            return
        detail = f"HTTP {outcome.status_code}" if outcome.status_code is not None else outcome.error
        task = asyncio.ensure_future(self._unreachable(event.conversation_id, bot_id, detail))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _unreachable(self, conversation_id: str, bot_id: str, detail: str | None) -> None:
        async def work(tx: Tx) -> Conversation | None:
            return await handovers.unreachable(tx, conversation_id, bot_id, detail)

        try:
            moved = await self.store.transact(work)
        except Exception as exc:  # the timeout sweep hands it over later
            log.warning("bot %s: handing %s over failed: %s", bot_id, conversation_id, exc)
            return
        if moved is not None:
            log.info("bot %s unreachable (%s): %s goes to humans", bot_id, detail, moved.id)
            self._wake_queue()

    # --- the timeout sweep ---------------------------------------------------------------

    @property
    def interval(self) -> float:
        """A quarter of the shortest timeout, between 0.2 s and 5 s."""
        shortest = min((b.timeout for b in self.rules.bots), default=20.0)
        return min(5.0, max(0.2, shortest / 4))

    def start(self) -> None:
        if self.rules.bots:
            self._tasks.append(asyncio.create_task(self._run(), name="bots-timeout"))
        if self.bus is not None and self.channels is not None:
            self._tasks.append(
                asyncio.create_task(self._follow(self.bus.last_seq), name="bots-channels")
            )

    async def _mine(self) -> bool:
        """Whether this replica does the bots' shared work (the lease ``bots``)."""
        if self.keeper is None or self.keeper.holds(LEASE):
            return True

        async def lost() -> None:
            return None  # the next round asks again; the other replica carries on

        return await self.keeper.claim(LEASE, lost)

    async def _run(self) -> None:
        while True:
            try:
                if await self._mine():
                    await self.sweep()
            except Exception as exc:  # the store is away: next time
                log.warning("bots' timeout sweep failed: %s", exc)
            await asyncio.sleep(self.interval)

    async def sweep(self) -> list[Conversation]:
        """Hand the conversations bots left unanswered past their timeout to humans."""
        rules = self.rules

        async def work(tx: Tx) -> list[Conversation]:
            return await handovers.release_overdue(tx, rules)

        moved = await self.store.transact(work)
        if moved:
            self._wake_queue()
        return moved

    # --- handovers told to the channel -----------------------------------------------

    async def _follow(self, seq: int) -> None:
        assert self.bus is not None
        while True:
            await self.bus.wait(seq)
            events = self.bus.from_ring(seq, PAGE)
            if events is None:
                try:
                    events = await self.store.events.after(seq, PAGE)
                except Exception as exc:  # the store is away: read again in a moment
                    log.warning("bots: reading the event log failed: %s", exc)
                    await asyncio.sleep(1.0)
                    continue
            for event in events:
                seq = event.seq
                if event.type != "conversation.handover" or event.conversation_id is None:
                    continue
                try:
                    if await self._mine():
                        await self.tell_channel(event)
                except Exception as exc:  # the provider refused: the gateway's side stands
                    log.warning(
                        "handover of %s not told to its channel: %s", event.conversation_id, exc
                    )

    async def tell_channel(self, event: Event) -> None:
        """A handover made here, told to a channel with a handover protocol: the thread
        passed to the bot's app, or taken back when the humans take it from an app."""
        data = event.data
        if data.get("reason") in (handovers.THREAD_PASSED, handovers.THREAD_TAKEN):
            return  # the channel moved it itself
        if data.get("to") == handovers.BOT:
            bot = self.rules.get(data.get("bot_id"))
            if bot is None or bot.facebook_app_id is None:
                return
            app_id: str | None = bot.facebook_app_id
        else:
            held = data.get("from") or {}
            if held.get("type") != "bot":
                return
            bot = self.rules.get(held.get("id"))
            if held.get("id") is not None and (bot is None or bot.facebook_app_id is None):
                return  # a bot of the gateway's own: the thread never left this app
            app_id = None
        conversation = data["conversation"]
        assert self.channels is not None
        connector = self.channels.get(conversation["channel_id"])
        if connector is None:
            return
        recipient = await self.store.conversations.recipient(ConversationId(conversation["id"]))
        if recipient is not None:
            await connector.hand_over(recipient, app_id, data.get("reason"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.keeper is not None:
            await self.keeper.release(LEASE)
