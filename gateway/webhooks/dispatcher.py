"""Webhook delivery from the durable event log: at least once, in order per conversation.

One worker per enabled endpoint reads the log after the endpoint's cursor. An event of a
conversation goes out only when no earlier event of that conversation is unsettled (in
flight, waiting for a retry, or waiting behind one); other events go out concurrently,
up to the endpoint's limit. Outcomes are written in batches: the attempt log, rows for
deliveries that must wait (`pending` retry, `waiting` behind one, `dead`), and the
cursor, which only passes events that are delivered or have such a row. After a crash,
everything after the cursor is sent again (same webhook-id), and every row resumes.

Sending never waits for the store: the next page of the log is read ahead while the
current one goes out, outcomes are written by a background flush (one at a time, so the
cursor only moves over what is durable), and a finished request's slot is refilled at
once by the sender that finished it, which goes on with the next request.

A slow or dead endpoint only ever slows its own worker.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import email.utils
import heapq
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from config.webhooks import DeliverySettings
from gateway import __version__
from gateway.events import EventBus, type_matcher
from gateway.store.protocols import Store
from gateway.store.records import AttemptLog, DeliveryRow, WebhookRecord
from gateway.webhooks.ssrf import GuardedResolver
from kernel import webhook_signing as signing
from kernel.events import Event

log = logging.getLogger(__name__)

US = 1_000_000
PAGE = 500
# While requests are in flight, a background flush starts once this many outcomes wait
# or FLUSH_SECONDS after the previous one started; when none is in flight, at once.
FLUSH_ITEMS = 256
FLUSH_SECONDS = 0.05
RESPONSE_EXCERPT = 1024
# A failing endpoint stops taking new events once this many wait for a retry; the log
# keeps them and the worker resumes when the endpoint answers again.
BACKLOG_LIMIT = 1000


@dataclass
class Outcome:
    status_code: int | None
    latency_ms: float
    error: str | None = None
    response: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Unsettled:
    """Seqs read but not accounted for yet. They are added in log order (a failed flush
    puts some back), discarded in any order, and only the smallest is ever asked for: a
    heap with lazy deletion."""

    __slots__ = ("_heap", "_live")

    def __init__(self) -> None:
        self._heap: list[int] = []
        self._live: set[int] = set()

    def __len__(self) -> int:
        return len(self._live)

    def add(self, seq: int) -> None:
        if seq not in self._live:
            self._live.add(seq)
            heapq.heappush(self._heap, seq)

    def discard(self, seq: int) -> None:
        self._live.discard(seq)

    def first(self) -> int | None:
        heap, live = self._heap, self._live
        while heap and heap[0] not in live:
            heapq.heappop(heap)
        return heap[0] if heap else None


@dataclass
class _Open:
    """A delivery that is not settled yet."""

    event: Event
    attempts: int = 0
    has_row: bool = False  # a `waiting` or `pending` row exists (or is in the batch)
    retrying: bool = False


@dataclass
class _Batch:
    attempts: list[AttemptLog] = field(default_factory=list)
    rows: list[DeliveryRow] = field(default_factory=list)
    settled: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)  # read seqs now accounted for
    success_at: int | None = None
    failed_at: int | None = None

    def __len__(self) -> int:
        return len(self.attempts) + len(self.rows) + len(self.settled) + len(self.done)


class EndpointWorker:
    def __init__(self, dispatcher: Dispatcher, record: WebhookRecord, keys: list[bytes]) -> None:
        self.d = dispatcher
        self.record = record
        self.keys = keys
        self.keys_refresh_at: float | None = None
        self._match = type_matcher(record.events)
        self._matched: dict[str, bool] = {}  # event type -> wanted (a handful of types)
        self.url = URL(record.url)
        self.scan_seq = record.cursor  # every event up to here has been looked at
        self.cursor = record.cursor  # ... and up to here is accounted for durably
        self.ahead: deque[Event] = deque()  # read from the log, not looked at yet
        self.read_seq = record.cursor  # the last event in `ahead` (or scan_seq)
        self.reading: asyncio.Task[list[Event]] | None = None
        self.read_error: BaseException | None = None
        self.flushing: asyncio.Task[None] | None = None
        self.last_flush = 0.0  # monotonic time the last flush started
        self.unsettled = _Unsettled()  # read, not yet accounted for
        self.inflight = 0
        self.busy: dict[str, deque[int]] = {}  # conversation -> seqs waiting behind its head
        # After a restart: seqs resumed from their rows (the reader skips them, they settle
        # through those rows), and resumed conversations whose head is not known yet ->
        # their first waiting seq.
        self.resumed: set[int] = set()
        self.unheaded: dict[str, int] = {}
        self.retries: list[tuple[float, int]] = []  # heap of (due unix time, seq)
        self.retrying = 0
        self.open: dict[int, _Open] = {}
        self.batch = _Batch()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.outbox: deque[int] = deque()  # seqs to send, taken by the senders
        self.senders: set[asyncio.Task[None]] = set()
        self.sending = 0  # senders that will still take from the outbox
        self.stopping = False

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
            self.d.restart_later(self.record.id)
        finally:
            if self.reading is not None:
                self.reading.cancel()
            if self.flushing is not None:
                await asyncio.gather(self.flushing, return_exceptions=True)
            await self._flush()

    async def _resume(self) -> None:
        """Rows left by an earlier run: retries to schedule, conversations to hold."""
        rows = await self.d.store.webhooks.open_rows(self.record.id)
        events = await self._events_by_seq([r.event_seq for r in rows])
        heads: set[str] = set()
        for row in rows:
            event = events.get(row.event_seq)
            if event is None:  # the event is gone from the log: nothing left to send
                self.batch.settled.append(row.event_seq)
                continue
            entry = _Open(event, row.attempts, has_row=True)
            self.open[row.event_seq] = entry
            self.resumed.add(row.event_seq)
            conv = row.conversation_id
            if row.status == "pending":
                entry.retrying = True
                self.retrying += 1
                heapq.heappush(self.retries, ((row.next_attempt_at or 0) / US, row.event_seq))
                if conv is not None:
                    heads.add(conv)
                    self.busy.setdefault(conv, deque())
            elif conv is not None:
                self.busy.setdefault(conv, deque()).append(row.event_seq)
            else:  # waiting without a conversation cannot happen; send it
                self._send(row.event_seq)
        for conv in [c for c in self.busy if c not in heads]:
            queue = self.busy[conv]
            if queue and queue[0] > self.cursor:
                # Its head may be an event after the cursor without a row (in flight when
                # the gateway stopped): the reader goes past the first waiting event
                # before the conversation moves on.
                self.unheaded[conv] = queue[0]
            else:
                # Its head was settled just before a stop: its next one goes now.
                self._release(conv)

    async def _events_by_seq(self, seqs: list[int]) -> dict[int, Event]:
        found: dict[int, Event] = {}
        for seq in sorted(seqs):
            if seq in found:
                continue
            for event in await self.d.store.events.after(seq - 1, PAGE):
                found.setdefault(event.seq, event)
        return found

    # --- reading the log ---------------------------------------------------------------

    def _can_take(self) -> bool:
        return (
            not self.stopping
            and self.inflight < self.d.settings.concurrency
            and self.retrying < BACKLOG_LIMIT
        )

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
            events = self.d.bus.from_ring(self.read_seq, PAGE)
            if events is None:
                self.reading = asyncio.create_task(self.d.store.events.after(self.read_seq, PAGE))
                self.reading.add_done_callback(self._read_done)
                return
            if not events:
                return
            self._took(events)
            self._fill()

    def _took(self, events: list[Event]) -> None:
        for event in events:
            if event.seq > self.read_seq:
                self.ahead.append(event)
                self.read_seq = event.seq

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

    def _fill(self) -> None:
        """Send what was read, as far as the limits allow (never waits)."""
        ahead = self.ahead
        while ahead and self._can_take():
            event = ahead.popleft()
            self.scan_seq = event.seq
            conv = event.conversation_id
            if event.seq in self.resumed:
                # Resumed from its row: it settles (or has settled) through that entry.
                self.resumed.discard(event.seq)
                if conv is not None and self.unheaded.get(conv) == event.seq:
                    del self.unheaded[conv]  # whatever came before it is queued now
                    self._release(conv)
                continue
            wanted = self._matched.get(event.type)
            if wanted is None:
                wanted = self._matched[event.type] = self._match(event.type)
            if not wanted:
                continue
            self.unsettled.add(event.seq)
            if conv is not None and conv in self.busy:
                # an earlier event of this conversation is unsettled: wait behind it
                queue = self.busy[conv]
                if queue and queue[-1] > event.seq:
                    bisect.insort(queue, event.seq)  # re-read before resumed rows
                else:
                    queue.append(event.seq)
                self.open[event.seq] = _Open(event, has_row=True)
                self.batch.rows.append(
                    DeliveryRow(event_seq=event.seq, conversation_id=conv, status="waiting")
                )
                self.batch.done.append(event.seq)
                continue
            if conv is not None:
                self.busy[conv] = deque()
            self.open[event.seq] = _Open(event)
            self._send(event.seq)

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
                try:
                    outcome = await self.d.post(self, self.open[seq].event)
                except asyncio.CancelledError:
                    raise  # stopping: abandoned, sent again after the cursor
                except Exception as exc:  # post() answers every expected failure itself
                    outcome = Outcome(None, 0.0, error=type(exc).__name__)
                self.inflight -= 1
                self.wake.set()
                self._settle(seq, outcome)
                self._fill()  # the slot is free: the next event goes out now
        finally:
            self.sending -= 1  # at once, not from a done callback: _send counts on it

    def _settle(self, seq: int, outcome: Outcome) -> None:
        entry = self.open[seq]
        event = entry.event
        now_us = time.time_ns() // 1000
        schedule = self.d.settings.retry_schedule
        if outcome.ok:
            result = "succeeded"
        elif outcome.gone:
            result = "disabled"
        elif entry.attempts >= len(schedule):
            result = "dead"
        else:
            result = "retry"
        self.batch.attempts.append(
            AttemptLog(
                seq,
                entry.attempts,
                now_us,
                outcome.status_code,
                round(outcome.latency_ms, 1),
                result,
                outcome.error,
                outcome.response,
            )
        )
        if result == "succeeded":
            self.batch.success_at = now_us
            self.batch.failed_at = None
        elif self.batch.failed_at is None:
            self.batch.failed_at = now_us
        if not entry.has_row:
            self.batch.done.append(seq)  # first attempt: the outcome accounts for it
        if result in ("retry", "disabled"):
            delay = 0.0
            if result == "retry":
                delay = schedule[entry.attempts]
                if outcome.retry_after is not None:
                    delay = min(max(outcome.retry_after, 1.0), 86400.0)
                else:
                    delay *= random.uniform(0.9, 1.1)  # noqa: S311 (jitter, not security)
            due = time.time() + delay
            entry.has_row = True
            if not entry.retrying:
                entry.retrying = True
                self.retrying += 1
            self.batch.rows.append(
                DeliveryRow(
                    event_seq=seq,
                    conversation_id=event.conversation_id,
                    status="pending",
                    attempts=entry.attempts,
                    next_attempt_at=int(due * US),
                    last_status_code=outcome.status_code,
                    last_error=outcome.error
                    or ("410 Gone: the endpoint was disabled" if result == "disabled" else None),
                )
            )
            if result == "disabled":
                self.d.disable_later(self.record.id, "the endpoint answered 410 Gone")
                self.stopping = True
            else:
                heapq.heappush(self.retries, (due, seq))
                if self._failing_too_long(now_us):
                    self.d.disable_later(self.record.id, "it kept failing for too long")
                    self.stopping = True
            return
        # succeeded or dead: over; the conversation may move on
        if result == "dead":
            self.batch.rows.append(
                DeliveryRow(
                    event_seq=seq,
                    conversation_id=event.conversation_id,
                    status="dead",
                    attempts=entry.attempts,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                )
            )
        elif entry.has_row:
            self.batch.settled.append(seq)
        if entry.retrying:
            self.retrying -= 1
        del self.open[seq]
        self._release(event.conversation_id)

    def _failing_too_long(self, now_us: int) -> bool:
        limit = self.d.settings.disable_after
        since = self.record.failing_since
        return bool(limit) and since is not None and now_us / US - since.timestamp() > limit

    def _release(self, conversation: str | None) -> None:
        """The conversation's head is settled: send the next event waiting behind it."""
        if conversation is None:
            return
        queue = self.busy.get(conversation)
        if not queue:
            self.busy.pop(conversation, None)
            return
        self._send(queue.popleft())

    def _retry_due(self) -> None:
        now = time.time()
        while self.retries and self.retries[0][0] <= now and not self.stopping:
            if self.inflight >= self.d.settings.concurrency:
                return
            _due, seq = heapq.heappop(self.retries)
            if seq in self.open:
                self._send(seq)

    async def _sleep(self) -> None:
        timeout = 30.0
        if self.flushing is None and self._flush_wanted():
            timeout = max(0.0, self.last_flush + FLUSH_SECONDS - time.monotonic())
        if self.retries and self.inflight < self.d.settings.concurrency:
            # (with every slot taken, a due retry waits for a request to finish: `wake`)
            timeout = min(timeout, max(0.0, self.retries[0][0] - time.time()))
        self.wake.clear()
        if self._can_take() and not self.ahead and self.reading is None:
            # Caught up with the log: new events, or anything the callbacks change.
            waiters: set[asyncio.Future[object]] = {
                asyncio.ensure_future(self.wake.wait()),
                asyncio.ensure_future(self.d.bus.wait(self.read_seq)),
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

    # --- bookkeeping -------------------------------------------------------------------

    def _flush_wanted(self) -> bool:
        first = self.unsettled.first()
        target = self.scan_seq if first is None else first - 1
        return bool(len(self.batch)) or target > self.cursor

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
        batch, self.batch = self.batch, _Batch()
        for seq in batch.done:
            self.unsettled.discard(seq)
        # Everything read is accounted for, except what is still unsettled.
        first = self.unsettled.first()
        cursor = self.scan_seq if first is None else first - 1
        moved = cursor > self.cursor
        if not len(batch) and not moved:
            return
        try:
            await self.d.store.webhooks.record_progress(
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
            for seq in batch.done:
                self.unsettled.add(seq)  # the cursor stays behind them: resent after a restart
            return
        self.cursor = max(self.cursor, cursor)
        if batch.success_at is not None:
            self.record = self.record.model_copy(update={"failing_since": None})
        elif batch.failed_at is not None and self.record.failing_since is None:
            self.record = self.record.model_copy(
                update={"failing_since": datetime.fromtimestamp(batch.failed_at / US, UTC)}
            )


class Dispatcher:
    """Runs one worker per enabled endpoint and sends their requests."""

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
        self.workers: dict[str, EndpointWorker] = {}
        self.session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        resolver = GuardedResolver(
            allow_private=self.settings.allow_private_networks,
            allow_loopback=self.settings.allow_loopback,
        )
        connector = aiohttp.TCPConnector(
            resolver=resolver, limit=0, limit_per_host=0, ttl_dns_cache=60
        )
        self.session = aiohttp.ClientSession(
            connector=connector,
            # Deliveries carry no state between them: cookies a receiver sets are dropped.
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            headers={"User-Agent": f"omnichannel-gateway/{__version__} (webhooks)"},
            auto_decompress=False,
        )
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
        if self.session is not None:
            await self.session.close()

    async def post(self, worker: EndpointWorker, event: Event) -> Outcome:
        assert self.session is not None
        if worker.keys_refresh_at is not None and time.time() >= worker.keys_refresh_at:
            found = self.keys_of(worker.record)  # a rotated-out secret just expired
            worker.keys, worker.keys_refresh_at = found.keys, found.refresh_at
        body = event.envelope().encode()
        headers = signing.headers(event.id, int(time.time()), body, worker.keys)
        started = time.perf_counter()
        try:
            async with self.session.post(
                worker.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                excerpt = await resp.content.read(RESPONSE_EXCERPT)
                return Outcome(
                    resp.status,
                    (time.perf_counter() - started) * 1000,
                    response=excerpt.decode("utf-8", "replace") or None,
                    retry_after=parse_retry_after(resp.headers.get("Retry-After"))
                    if resp.status == 429 or resp.status >= 500
                    else None,
                )
        except TimeoutError:
            return Outcome(None, (time.perf_counter() - started) * 1000, error="timeout")
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return Outcome(None, (time.perf_counter() - started) * 1000, error=_describe(exc))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]
