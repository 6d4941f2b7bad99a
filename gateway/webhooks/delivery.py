"""Webhook delivery for every endpoint: one worker per enabled endpoint (worker.py), all of
them sending through one HTTP client (sending.py). Workers are started, reloaded when
their endpoint changes, restarted after a failure, and stopped when their endpoint is
disabled. A slow or dead endpoint only ever slows its own worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from config.webhooks import DeliverySettings
from gateway.events import EventBus
from gateway.store.protocols import Store
from gateway.store.records import WebhookRecord
from gateway.webhooks.sending import WebhookClient
from gateway.webhooks.worker import EndpointWorker

log = logging.getLogger(__name__)


class Deliveries:
    """Runs one worker per enabled endpoint, and the HTTP client they send through."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        settings: DeliverySettings,
        keys_of: Callable[[WebhookRecord], Any],
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.keys_of = keys_of
        self.client = WebhookClient(settings, keys_of)
        self.workers: dict[str, EndpointWorker] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.client.open()
        for record in await self.store.webhooks.all():
            self._start(record)

    def _start(self, record: WebhookRecord) -> None:
        if record.disabled_at is not None or record.id in self.workers:
            return
        found = self.keys_of(record)
        worker = EndpointWorker(self, record, found.keys)
        worker.keys_refresh_at = found.refresh_at
        self.workers[record.id] = worker
        worker.start()

    async def pause(self, endpoint_id: str) -> None:
        """Stop the endpoint's worker, its progress written, until the next reload: for
        changes to its cursor or rows that a running worker would write over."""
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()

    async def reload(self, endpoint_id: str) -> None:
        """The endpoint changed (created, edited, enabled, rotated, replayed, deleted)."""
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()
        record = await self.store.webhooks.get(endpoint_id)
        if record is not None:
            self._start(record)

    def restart_later(self, endpoint_id: str) -> None:
        self._spawn(self._restart(endpoint_id))

    async def _restart(self, endpoint_id: str) -> None:
        await asyncio.sleep(1.0)
        await self.reload(endpoint_id)

    def disable_later(self, endpoint_id: str, reason: str) -> None:
        self._spawn(self._disable(endpoint_id, reason))

    async def _disable(self, endpoint_id: str, reason: str) -> None:
        log.warning("webhook %s disabled: %s", endpoint_id, reason)
        worker = self.workers.pop(endpoint_id, None)
        if worker is not None:
            await worker.stop()
        await self.store.webhooks.set_enabled(endpoint_id, False, reason)

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
