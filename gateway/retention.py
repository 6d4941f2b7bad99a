"""Erasure and retention as they run: a person erased on request (DELETE
/v1/contacts/{id}), and the sweep that takes out what is older than `[retention]` allows.

The rules are in gateway.domain.erasure; here, what follows a commit: files removed from
the data directory, the live ring of events dropped where it held rewritten events, and
the store asked to leave no old copy in its files (Store.reclaim). On PostgreSQL the
sweep runs on one replica at a time, under the named lease ``retention``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from config.schema import RetentionSettings
from gateway.attachments import remove_files
from gateway.domain import erasure
from gateway.domain.erasure import Erasure, Forgotten
from gateway.events import EventBus
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.transaction import Tx
from kernel.ids import ContactId

log = logging.getLogger(__name__)

RowsWork = Callable[[Tx], Awaitable[int]]

LEASE = "retention"
# Rows deleted or conversations forgotten per unit of work: short transactions, so
# customers' messages are never held up behind a sweep.
BATCH = 200
# The first sweep, this long after the start.
FIRST_SWEEP = 30.0


@dataclass
class Swept:
    raw_events: int = 0
    delivery_logs: int = 0
    attachments: int = 0
    conversations: int = 0

    @property
    def anything(self) -> bool:
        return bool(self.raw_events or self.delivery_logs or self.attachments or self.conversations)


def _us_now() -> int:
    return time.time_ns() // 1000


class Retention:
    def __init__(
        self,
        store: Store,
        files: Path,
        bus: EventBus,
        settings: RetentionSettings,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.files = files  # where attachments' files live (SQLite)
        self.bus = bus
        self.settings = settings
        self.keeper = keeper
        self._task: asyncio.Task[None] | None = None

    async def erase(self, contact_id: ContactId) -> Erasure:
        async def work(tx: Tx) -> tuple[Erasure, Forgotten]:
            return await erasure.erase(tx, contact_id)

        report, done = await self.store.transact(work, alone=True)
        await self._settle([done], thorough=self.settings.compact_after_erasure)
        log.info(
            "contact %s erased: %d contacts, %d conversations, %d messages",
            report.contact_id,
            len(report.erased_contact_ids),
            len(report.conversation_ids),
            report.messages,
        )
        return report

    async def sweep(self) -> Swept:
        """Take out everything older than the configured ages, in short units of work."""
        s, swept, done = self.settings, Swept(), []
        now = _us_now()

        def before(age: float) -> int:
            return now - int(age * 1_000_000)

        if s.raw_events:
            cutoff = before(s.raw_events)

            async def raw(tx: Tx) -> int:
                return await tx.erasure.drop_raw_events(before=cutoff, limit=BATCH)

            swept.raw_events = await self._repeat(raw)
        if s.delivery_logs:
            cutoff_logs = before(s.delivery_logs)

            async def logs(tx: Tx) -> int:
                return await tx.erasure.drop_attempts(cutoff_logs, BATCH)

            swept.delivery_logs = await self._repeat(logs)
        if s.attachments:
            cutoff_files = before(s.attachments)

            async def files(tx: Tx) -> list[str]:
                return await tx.erasure.drop_attachments(before=cutoff_files, limit=BATCH)

            while True:
                paths = await self.store.transact(files)
                done.append(Forgotten(paths=paths))
                swept.attachments += len(paths)
                if len(paths) < BATCH:
                    break
        if s.resolved_conversations:
            cutoff_conversations = before(s.resolved_conversations)

            async def conversations(tx: Tx) -> tuple[int, Forgotten]:
                return await erasure.forget_resolved(tx, cutoff_conversations, BATCH)

            while True:
                count, forgotten = await self.store.transact(conversations, alone=True)
                done.append(forgotten)
                swept.conversations += count
                if count < BATCH:
                    break
        if swept.anything:
            await self._settle(done, thorough=False)
            log.info("retention sweep: %s", swept)
        return swept

    async def _repeat(self, work: RowsWork) -> int:
        total = 0
        while True:
            count = await self.store.transact(work)
            total += count
            if count < BATCH:
                return total

    async def _settle(self, done: list[Forgotten], *, thorough: bool) -> None:
        """After the commit: files removed, the live ring cleared of rewritten events, and
        the store's files left without old copies."""
        paths = [p for d in done for p in d.paths if p]
        if paths:
            await asyncio.to_thread(self._remove, paths)
        self.bus.forget([seq for d in done for seq in d.events])
        await self.store.reclaim(thorough=thorough)

    def _remove(self, paths: list[str]) -> None:
        remove_files(self.files, paths)

    # --- the sweep, in the background ---------------------------------------------------

    @property
    def enabled(self) -> bool:
        s = self.settings
        return bool(s.raw_events or s.delivery_logs or s.attachments or s.resolved_conversations)

    def start(self) -> None:
        if self.enabled:
            self._task = asyncio.create_task(self._run(), name="retention-sweep")

    async def _run(self) -> None:
        await asyncio.sleep(FIRST_SWEEP)
        while True:
            try:
                await self.sweep_if_mine()
            except Exception as exc:  # the store is away, or one batch failed: next time
                log.warning("retention sweep failed: %s", exc)
            await asyncio.sleep(self.settings.sweep_interval)

    async def sweep_if_mine(self) -> Swept | None:
        """Sweep, unless another replica holds the lease (then None)."""
        if self.keeper is None:
            return await self.sweep()

        async def lost() -> None:
            # Another replica sweeps from now on; the batch under way is short, and
            # sweeping the same rows twice does no harm.
            return None

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
