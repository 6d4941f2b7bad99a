"""Webhook delivery for every endpoint: one worker per enabled endpoint (worker.py), all of
them sending through one HTTP client (sending.py). Workers are started, reloaded when
their endpoint changes, restarted after a failure, and stopped when their endpoint is
disabled. A slow or dead endpoint only ever slows its own worker.

Among replicas sharing a store, an endpoint's worker runs where its lease is held
("webhook:<id>"): one replica at a time, so per-conversation order and the cursor stay
one worker's. A replica changing an endpoint through its API takes the lease over
first (the holder stops its worker, its progress written, and hands it over); the
others start the workers of endpoints nobody holds, as `sync` finds them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any, Protocol

from config.webhooks import DeliverySettings
from gateway.events import EventBus
from gateway.metrics import EndpointBacklog, Metrics
from gateway.replicas.leases import LeaseKeeper
from gateway.store.protocols import Store
from gateway.store.records import WebhookRecord
from gateway.webhooks.sending import Outcome, WebhookClient
from gateway.webhooks.worker import EndpointWorker
from kernel.errors import StoreUnavailable
from kernel.events import Event
from kernel.models import utcnow
from kernel.secrets import Unsealable

log = logging.getLogger(__name__)


class Scope(Protocol):
    """Which events an endpoint gets beyond their types (a bot's: its conversations')."""

    async def seed(self) -> None:
        """Before the worker reads from its cursor: what the scope starts from."""
        ...

    def wants(self, event: Event) -> bool:
        """Asked once per event of a wanted type, in log order."""
        ...


class Deliveries:
    """Runs one worker per enabled endpoint, and the HTTP client they send through."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: DeliverySettings,
        keys_of: Callable[[WebhookRecord], Any],
        metrics: Metrics,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.keeper = keeper  # None: the only process on its store
        self.bus = bus
        self.settings = settings
        self.keys_of = keys_of
        self.client = WebhookClient(settings, keys_of)
        self.workers: dict[str, EndpointWorker] = {}
        # Endpoints whose secrets no key of this process opens: since when, and why.
        self.unopened: dict[str, tuple[datetime, str]] = {}
        self._background: set[asyncio.Task[None]] = set()
        # Endpoints delivered with settings of their own (bots: their timeout and
        # retries), and those getting only some events of their types.
        self.own_settings: dict[str, DeliverySettings] = {}
        self.scopes: dict[str, Callable[[], Scope]] = {}
        # Told of every dead delivery (bots hand the conversation to humans).
        self.on_dead: Callable[[WebhookRecord, Event, Outcome], None] | None = None

    def settings_for(self, record: WebhookRecord) -> DeliverySettings:
        return self.own_settings.get(record.id, self.settings)

    def scope_for(self, record: WebhookRecord) -> Scope | None:
        make = self.scopes.get(record.id)
        return None if make is None else make()

    async def start(self) -> None:
        self.client.open()
        await self.sync()

    async def sync(self) -> None:
        """Run the worker of every enabled endpoint that no process runs (all of them,
        on a store of its own); stop those of endpoints gone or disabled meanwhile."""
        records = {r.id: r for r in await self.store.webhooks.all()}
        for endpoint_id in list(self.workers):
            record = records.get(endpoint_id)
            if record is None or record.disabled_at is not None:
                await self._stop(endpoint_id)
        for endpoint_id in [e for e in self.unopened if e not in records]:
            del self.unopened[endpoint_id]
        for record in records.values():
            if (
                record.disabled_at is None
                and record.id not in self.workers
                and self._keys(record) is not None  # never claim what cannot be signed here
                and (
                    self.keeper is None
                    or await self.keeper.claim(_lease(record.id), self._lost(record.id))
                )
            ):
                self._start(record)

    def _lost(self, endpoint_id: str) -> Callable[[], Coroutine[Any, Any, None]]:
        async def stop() -> None:
            worker = self.workers.pop(endpoint_id, None)
            if worker is not None:
                await worker.stop()

        return stop

    async def _own(self, endpoint_id: str) -> None:
        """Take the endpoint's work over from whichever replica runs it."""
        if self.keeper is None:
            return
        if not await self.keeper.take(
            _lease(endpoint_id), self._lost(endpoint_id), within=self.keeper.seconds + 2
        ):
            raise StoreUnavailable(
                f"webhook {endpoint_id} is being delivered by another replica that did not "
                "hand it over in time; try again",
                code="busy_elsewhere",
            )

    async def _stop(self, endpoint_id: str) -> None:
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()
        if self.keeper is not None:
            await self.keeper.release(_lease(endpoint_id))

    def backlogs(self) -> list[EndpointBacklog]:
        """What each endpoint delivered from this process still owes (for /metrics)."""
        last_seq, now = self.bus.last_seq, time.time()
        return [worker.backlog(last_seq, now) for worker in self.workers.values()]

    def _keys(self, record: WebhookRecord) -> Any:
        """The endpoint's signing keys; None (and the reason kept) when they cannot be
        opened with this process's secret keys."""
        try:
            found = self.keys_of(record)
        except Unsealable as exc:
            if record.id not in self.unopened:
                reason = (
                    f"{exc}. Give that key back, or give the endpoint a new secret "
                    f"(POST /v1/webhooks/{record.id}/rotate)"
                )
                log.error("webhook %s cannot be delivered to: %s", record.id, reason)
                self.unopened[record.id] = (utcnow(), reason)
            return None
        self.unopened.pop(record.id, None)
        return found

    def _start(self, record: WebhookRecord) -> bool:
        if record.disabled_at is not None:
            return False
        if record.id in self.workers:
            return True
        found = self._keys(record)
        if found is None:
            return False
        worker = EndpointWorker(self, record, found.keys)
        worker.keys_refresh_at = found.refresh_at
        self.workers[record.id] = worker
        worker.start()
        return True

    async def pause(self, endpoint_id: str) -> None:
        """Stop the endpoint's worker, its progress written, until the next reload: for
        changes to its cursor or rows that a running worker would write over (on any
        replica)."""
        await self._own(endpoint_id)
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()

    async def reload(self, endpoint_id: str) -> None:
        """The endpoint changed (created, edited, enabled, rotated, replayed, deleted)."""
        await self._own(endpoint_id)
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()
        record = await self.store.webhooks.get(endpoint_id)
        if record is None:
            self.unopened.pop(endpoint_id, None)
            self.metrics.forget_endpoint(endpoint_id)
        if (record is None or not self._start(record)) and self.keeper is not None:
            await self.keeper.release(_lease(endpoint_id))

    def restart_later(self, endpoint_id: str) -> None:
        self._spawn(self._restart(endpoint_id))

    async def _restart(self, endpoint_id: str) -> None:
        await asyncio.sleep(1.0)
        if self.keeper is not None and not self.keeper.holds(_lease(endpoint_id)):
            return  # the lease went meanwhile: sync starts it where it is taken next
        await self.reload(endpoint_id)

    def disable_later(self, endpoint_id: str, reason: str) -> None:
        self._spawn(self._disable(endpoint_id, reason))

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        log.warning("webhook %s disabled: %s", endpoint_id, reason)
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()
        await self.store.webhooks.set_enabled(endpoint_id, False, reason)
        if self.keeper is not None:
            await self.keeper.release(_lease(endpoint_id))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self) -> None:
        workers = list(self.workers.values())
        self.workers.clear()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.client.close()


def _lease(endpoint_id: str) -> str:
    return f"webhook:{endpoint_id}"
