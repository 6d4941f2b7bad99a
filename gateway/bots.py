"""Bots as the gateway runs them: each bot's webhook endpoint gets only the events of the
conversations it holds (`BotScope`), a delivery to it that dies hands the conversation to
humans, and a sweep hands over those a bot left unanswered past its `timeout`.

The sweep runs on one replica at a time, under the named lease ``bots``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.domain import bots as handovers
from gateway.domain.bots import BotRules
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.records import ConversationFilter, WebhookRecord
from gateway.store.transaction import Tx
from gateway.webhooks.delivery import Deliveries
from gateway.webhooks.sending import Outcome
from gateway.webhooks.service import bot_endpoint_id
from kernel.events import Event
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
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.deliveries = deliveries
        self.keeper = keeper
        self._wake_queue = wake_queue
        self._task: asyncio.Task[None] | None = None
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
            self._task = asyncio.create_task(self._run(), name="bots-timeout")

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep_if_mine()
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

    async def sweep_if_mine(self) -> list[Conversation] | None:
        if self.keeper is None:
            return await self.sweep()

        async def lost() -> None:
            return None  # the other replica's sweep finds nothing this one moved

        if not await self.keeper.claim(LEASE, lost):
            return None
        try:
            return await self.sweep()
        finally:
            await self.keeper.release(LEASE)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        await asyncio.gather(*self._background, return_exceptions=True)
