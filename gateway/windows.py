"""Reply windows, known before sending: each conversation's window worked out from its
channel's rules (``Connector.reply_window``) and the customer's last interaction; the
check that refuses a send into a closed window before anything is stored; and the sweep
that announces ``conversation.window_closing`` once per window, a lead before it closes
(one process at a time among replicas, by a named lease; the closing time announced is
kept with the conversation, so a restart or a second process never announces it twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

from connectors.base import Connector
from connectors.windows import refusal
from gateway.channels import LiveChannels
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.records import from_us, opt_dt, to_us
from gateway.store.transaction import Tx
from kernel.errors import Invalid
from kernel.models import Conversation, Part, ReplyWindow

log = logging.getLogger(__name__)

LEASE = "windows"
BATCH = 1000


def ensure_allowed(
    connector: Connector, parts: Sequence[Part], last_inbound_us: int | None, phone: str | None
) -> ReplyWindow:
    """The window, when it lets these parts out; otherwise Invalid ``window_closed`` (422)
    naming the window and what it would let out. Parts the channel can never send are
    refused first (``unsupported_part``, ``unknown_template``)."""
    connector.check_parts(parts, phone=phone)
    window = connector.reply_window(opt_dt(last_inbound_us), phone=phone)
    allowed = refusal(window, parts)
    if allowed is not None:
        what = " (only a template part may go out)" if allowed == ["template"] else ""
        raise Invalid(
            f"the reply window is {window.state.value}{what}: {window.reason}",
            code="window_closed",
            details={"reply_window": window.model_dump(mode="json"), "allowed": allowed},
        )
    return window


class ReplyWindows:
    """Conversations as the API shows them, with their reply windows."""

    def __init__(self, store: Store, channels: LiveChannels) -> None:
        self.store = store
        self.channels = channels

    async def show(self, conversations: Sequence[Conversation]) -> list[Conversation]:
        if not conversations:
            return []
        facts = await self.store.conversations.window_facts([c.id for c in conversations])
        shown = []
        for conv in conversations:
            connector = self.channels.get(conv.channel_id)
            found = facts.get(conv.id)
            if connector is None or found is None:
                shown.append(conv)
                continue
            window = connector.reply_window(opt_dt(found.last_inbound_at), phone=found.phone)
            shown.append(conv.model_copy(update={"reply_window": window}))
        return shown

    async def one(self, conversation: Conversation) -> Conversation:
        return (await self.show([conversation]))[0]


class WindowWatch:
    """Announces conversation.window_closing ``lead`` before each window closes."""

    def __init__(
        self,
        store: Store,
        channels: LiveChannels,
        *,
        lead: float,
        every: float,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.lead = timedelta(seconds=lead)
        self.every = every
        self.keeper = keeper  # None: the only process on its store
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="window-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.keeper is not None and self.keeper.holds(LEASE):
            await self.keeper.release(LEASE)

    async def _run(self) -> None:
        while True:
            try:
                if self.keeper is None or await self.keeper.claim(LEASE, self._lost):
                    await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("looking for closing reply windows failed; tried again later")
            await asyncio.sleep(self.every)

    async def _lost(self) -> None:
        """Another process has the lease now: it sweeps (announcing is idempotent anyway)."""

    async def sweep(self) -> int:
        """Announce every window closing within the lead; returns how many."""
        channels: dict[str, Connector] = {
            cid: c for cid, c in self.channels.connectors.items() if c.window_ends
        }
        if not channels:
            return 0
        # One clock for the sweep: the channels' (tests move it).
        now = next(iter(channels.values())).now()
        lead = self.lead

        async def work(tx: Tx) -> int:
            announced = 0
            # Customers whose window closes within the lead: they last wrote one window's
            # length ago, give or take the lead.
            ends = {end for c in channels.values() for end in c.window_ends}
            spans = [(to_us(now - end), to_us(now - end + lead)) for end in sorted(ends)]
            types = sorted({c.type.value for c in channels.values()})
            found = await tx.conversations.window_candidates(types, spans, to_us(now), BATCH)
            for cand in found:
                record = cand.record
                connector = channels.get(record.channel_id)
                if connector is None or record.last_inbound_at is None:
                    continue
                window = connector.reply_window(from_us(record.last_inbound_at), phone=cand.phone)
                closes = window.closes_at
                if closes is None or not now < closes <= now + lead:
                    continue
                closes_us = to_us(closes)
                if cand.warned_at == closes_us:
                    continue
                if not await tx.conversations.warn_window(record.id, closes_us):
                    continue
                conv = record.model().model_copy(update={"reply_window": window})
                await tx.emit(
                    "conversation.window_closing",
                    {"conversation": conv, "reply_window": window},
                    record.id,
                )
                announced += 1
            return announced

        return await self.store.transact(work)
