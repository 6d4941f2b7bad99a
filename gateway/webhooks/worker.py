"""One endpoint's delivery worker: it reads the log, sends, and writes the outcomes, as the
ordering bookkeeping it is built on (ordering.py) decides.

Sending never waits for the store: the next page of the log is read ahead while the
current one goes out, outcomes are written by a background flush (one at a time, so the
cursor only moves over what is durable), and a finished request's slot is refilled at
once by the sender that finished it, which goes on with the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from yarl import URL

from gateway.metrics import EndpointBacklog
from gateway.store.records import WebhookRecord
from gateway.webhooks.ordering import BACKLOG_LIMIT, RESULTS, Ordering
from gateway.webhooks.sending import Outcome
from kernel.events import Event

if TYPE_CHECKING:
    from gateway.webhooks.delivery import Deliveries

log = logging.getLogger(__name__)

PAGE = 500
# While requests are in flight, a background flush starts once this many outcomes wait
# or FLUSH_SECONDS after the previous one started; when none is in flight, at once.
FLUSH_ITEMS = 256
FLUSH_SECONDS = 0.05


class EndpointWorker(Ordering):
    def __init__(self, deliveries: Deliveries, record: WebhookRecord, keys: list[bytes]) -> None:
        super().__init__(record, deliveries.settings_for(record))
        self.scope = deliveries.scope_for(record)
        self.wants = None if self.scope is None else self.scope.wants
        self.deliveries = deliveries
        self.client = deliveries.client
        self.keys = keys
        self.keys_refresh_at: float | None = None
        self.url = URL(record.url)
        self.reading: asyncio.Task[list[Event]] | None = None
        self.read_error: BaseException | None = None
        self.flushing: asyncio.Task[None] | None = None
        self.last_flush = 0.0  # monotonic time the last flush started
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.outbox: deque[int] = deque()  # seqs to send, taken by the senders
        self.senders: set[asyncio.Task[None]] = set()
        self.sending = 0  # senders that will still take from the outbox
        metrics = deliveries.metrics
        self.delivered = metrics.webhook_delivery.labels(record.id)
        self.request_seconds = metrics.webhook_request.labels(record.id)
        self.attempts = {r: metrics.webhook_attempts.labels(record.id, r) for r in RESULTS}

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"webhook:{self.record.id}")

    async def stop(self) -> None:
        self.stopping = True
        self.wake.set()
        # Requests in flight are abandoned: the cursor never passed them, so they are
        # sent again (same webhook-id) when the endpoint's worker runs next.
        senders = list(self.senders)
        for sender in senders:
            sender.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        try:
            await self._resume()
            while not self.stopping:
                if self.read_error is not None:
                    raise self.read_error
                self._fill()
                self._retry_due()
                self._read_ahead()
                self._flush_if_due()
                await self._sleep()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook %s: worker failed; restarting it", self.record.id)
            self.deliveries.restart_later(self.record.id)
        finally:
            if self.reading is not None:
                self.reading.cancel()
            if self.flushing is not None:
                await asyncio.gather(self.flushing, return_exceptions=True)
            await self._flush()

    async def _resume(self) -> None:
        """Rows left by an earlier run: retries to schedule, conversations to hold."""
        if self.scope is not None:
            await self.scope.seed()
        rows = await self.deliveries.store.webhooks.open_rows(self.record.id)
        events = await self._events_by_seq([r.event_seq for r in rows])
        self._resume_rows(rows, events)

    async def _events_by_seq(self, seqs: list[int]) -> dict[int, Event]:
        found: dict[int, Event] = {}
        for seq in sorted(seqs):
            if seq in found:
                continue
            for event in await self.deliveries.store.events.after(seq - 1, PAGE):
                found.setdefault(event.seq, event)
        return found

    # --- reading the log ---------------------------------------------------------------

    def _read_ahead(self) -> None:
        """Keep about a page of the log in memory: from the bus's ring while it still
        holds what comes next (sending it at once), otherwise read from the store in the
        background."""
        while (
            not self.stopping
            and self.reading is None
            and len(self.ahead) < PAGE // 2
            and self.retrying < BACKLOG_LIMIT
        ):
            events = self.deliveries.bus.from_ring(self.read_seq, PAGE)
            if events is None:
                self.reading = asyncio.create_task(
                    self.deliveries.store.events.after(self.read_seq, PAGE)
                )
                self.reading.add_done_callback(self._read_done)
                return
            if not events:
                return
            self._took(events)
            self._fill()

    def _read_done(self, task: asyncio.Task[list[Event]]) -> None:
        self.reading = None
        self.wake.set()
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.read_error = error  # raised by the worker's loop, which restarts it
            return
        self._took(task.result())
        self._fill()

    # --- sending -----------------------------------------------------------------------

    def _send(self, seq: int) -> None:
        self.inflight += 1
        self.open[seq].attempts += 1
        self.outbox.append(seq)
        if self.sending < self.inflight:  # every sender has a request of its own
            self.sending += 1
            sender = asyncio.create_task(self._sender())
            self.senders.add(sender)
            sender.add_done_callback(self.senders.discard)

    async def _sender(self) -> None:
        """Sends from the outbox until it is empty. A sender that finishes a request
        settles it and refills the slot itself, then takes the next request at once: one
        task serves request after request while the backlog lasts."""
        outbox = self.outbox
        try:
            while outbox:
                seq = outbox.popleft()
                event = self.open[seq].event
                try:
                    outcome = await self.client.post(self, event)
                except asyncio.CancelledError:
                    raise  # stopping: abandoned, sent again after the cursor
                except Exception as exc:  # post() answers every expected failure itself
                    outcome = Outcome(None, 0.0, error=type(exc).__name__)
                self.inflight -= 1
                self.wake.set()
                self._measure(event, outcome, self._settle(seq, outcome))
                self._fill()  # the slot is free: the next event goes out now
        finally:
            self.sending -= 1  # at once, not from a done callback: _send counts on it

    def _measure(self, event: Event, outcome: Outcome, result: str) -> None:
        self.attempts[result].inc()
        if outcome.latency_ms > 0:
            self.request_seconds.observe(outcome.latency_ms / 1000)
        if result == "succeeded":
            self.delivered.observe(max(0.0, time.time() - event.created_at.timestamp()))

    def backlog(self, last_seq: int, now: float) -> EndpointBacklog:
        """What this endpoint still owes, for /metrics."""
        oldest = min((entry.event.created_at for entry in self.open.values()), default=None)
        if oldest is None and self.ahead:
            oldest = self.ahead[0].created_at
        return EndpointBacklog(
            endpoint=self.record.id,
            events=max(0, last_seq - self.cursor),
            retrying=self.retrying,
            inflight=self.inflight,
            oldest_seconds=0.0 if oldest is None else max(0.0, now - oldest.timestamp()),
        )

    def _disable(self, reason: str) -> None:
        self.deliveries.disable_later(self.record.id, reason)

    def _dead(self, event: Event, outcome: Outcome) -> None:
        if self.deliveries.on_dead is not None:
            self.deliveries.on_dead(self.record, event, outcome)

    async def _sleep(self) -> None:
        timeout = 30.0
        if self.flushing is None and self._flush_wanted():
            timeout = max(0.0, self.last_flush + FLUSH_SECONDS - time.monotonic())
        if self.retries and self.inflight < self.settings.concurrency:
            # (with every slot taken, a due retry waits for a request to finish: `wake`)
            timeout = min(timeout, max(0.0, self.retries[0][0] - time.time()))
        self.wake.clear()
        if self._can_take() and not self.ahead and self.reading is None:
            # Caught up with the log: new events, or anything the callbacks change.
            waiters: set[asyncio.Future[object]] = {
                asyncio.ensure_future(self.wake.wait()),
                asyncio.ensure_future(self.deliveries.bus.wait(self.read_seq)),
            }
            try:
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
            return
        # Busy: finished requests, reads and flushes wake us through `wake`.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.wake.wait()

    # --- writing the outcomes ----------------------------------------------------------

    def _flush_if_due(self) -> None:
        """Start a background flush: one at a time, so that the cursor it writes only
        passes what earlier flushes made durable."""
        if self.flushing is not None or not self._flush_wanted():
            return
        now = time.monotonic()
        busy = self.inflight > 0 and len(self.batch) < FLUSH_ITEMS
        if busy and now - self.last_flush < FLUSH_SECONDS:
            return  # more outcomes are on their way: write them together
        self.last_flush = now
        self.flushing = asyncio.create_task(self._flush())
        self.flushing.add_done_callback(self._flush_done)

    def _flush_done(self, task: asyncio.Task[None]) -> None:
        self.flushing = None
        self.wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook %s: flush failed", self.record.id, exc_info=task.exception())

    async def _flush(self) -> None:
        batch, cursor = self._take_batch()
        moved = cursor > self.cursor
        if not len(batch) and not moved:
            return
        try:
            await self.deliveries.store.webhooks.record_progress(
                self.record.id,
                cursor=cursor if moved else None,
                attempts=batch.attempts,
                rows=batch.rows,
                settled=batch.settled,
                success_at=batch.success_at,
                failed_at=batch.failed_at,
            )
        except Exception:
            log.exception("webhook %s: recording progress failed", self.record.id)
            self._unwritten(batch)
            return
        self._written(batch, cursor)
