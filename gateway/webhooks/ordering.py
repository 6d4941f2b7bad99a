"""Webhook delivery from the durable event log: at least once, in order per conversation.

One worker per enabled endpoint (worker.py) reads the log after the endpoint's cursor. An
event of a conversation goes out only when no earlier event of that conversation is
unsettled (in flight, waiting for a retry, or waiting behind one); other events go out
concurrently, up to the endpoint's limit. Outcomes are written in batches: the attempt
log, rows for deliveries that must wait (`pending` retry, `waiting` behind one, `dead`),
and the cursor, which only passes events that are delivered or have such a row. After a
crash, everything after the cursor is sent again (same webhook-id), and every row resumes.

This module holds those rules as bookkeeping without I/O: `Ordering` is told the events
read from the log and the outcomes of requests, says which event goes out now (`_send`),
and gathers the batch to write with the cursor that goes with it. The worker is a
subclass of it, so that the bookkeeping costs no more than if it were written inline.
"""

from __future__ import annotations

import bisect
import heapq
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from config.webhooks import DeliverySettings
from gateway.events import type_matcher
from gateway.store.records import AttemptLog, DeliveryRow, WebhookRecord
from gateway.webhooks.sending import Outcome
from kernel.events import Event

US = 1_000_000
# A failing endpoint stops taking new events once this many wait for a retry; the log
# keeps them and the worker resumes when the endpoint answers again.
BACKLOG_LIMIT = 1000
# What an attempt comes to (`_settle`): the attempt log's `result`.
RESULTS = ("succeeded", "retry", "dead", "disabled")


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


class Ordering:
    """The delivery bookkeeping of one endpoint: which events go out now, which wait
    behind an earlier event of their conversation or for a retry, and what the next
    batch of outcomes and the cursor are.

    The worker drives it: it passes the events it reads (`_took`), lets it send what the
    limits allow (`_fill`, `_retry_due`), reports every outcome (`_settle`), and writes
    what `_take_batch` gives (then `_written` or `_unwritten`). A subclass provides
    `_send` (the event goes out now; it counts the request in `inflight` and as an
    attempt of its entry) and `_disable` (the endpoint is to be disabled).
    """

    def __init__(self, record: WebhookRecord, settings: DeliverySettings) -> None:
        self.record = record
        self.settings = settings
        self._match = type_matcher(record.events)
        self._matched: dict[str, bool] = {}  # event type -> wanted (a handful of types)
        self.scan_seq = record.cursor  # every event up to here has been looked at
        self.cursor = record.cursor  # ... and up to here is accounted for durably
        self.ahead: deque[Event] = deque()  # read from the log, not looked at yet
        self.read_seq = record.cursor  # the last event in `ahead` (or scan_seq)
        self.unsettled = _Unsettled()  # read, not yet accounted for
        self.inflight = 0  # requests sent and not answered yet (counted by `_send`)
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
        self.stopping = False  # no new request starts
        # Which events of the wanted types the endpoint gets (a bot: its conversations'),
        # asked of every such event once, in log order; None: all of them.
        self.wants: Callable[[Event], bool] | None = None

    # --- what the subclass provides ----------------------------------------------------

    def _send(self, seq: int) -> None:
        """The event goes out now: count it in `inflight` and as an attempt of
        `self.open[seq]`, and have it sent; its outcome comes back through `_settle`."""
        raise NotImplementedError

    def _disable(self, reason: str) -> None:
        """The endpoint is to be disabled (this worker stops taking anything new)."""
        raise NotImplementedError

    def _dead(self, event: Event, outcome: Outcome) -> None:
        """A delivery is dead (its retries used up): nothing to do by default."""

    # --- after a restart ---------------------------------------------------------------

    def _resume_rows(self, rows: Iterable[DeliveryRow], events: dict[int, Event]) -> None:
        """Rows left by an earlier run (in event order, with their events from the log):
        retries to schedule, conversations to hold."""
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

    # --- events read from the log ------------------------------------------------------

    def _can_take(self) -> bool:
        return (
            not self.stopping
            and self.inflight < self.settings.concurrency
            and self.retrying < BACKLOG_LIMIT
        )

    def _took(self, events: list[Event]) -> None:
        """Events read from the log, in log order (any already read are skipped)."""
        for event in events:
            if event.seq > self.read_seq:
                self.ahead.append(event)
                self.read_seq = event.seq

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
            if not wanted or (self.wants is not None and not self.wants(event)):
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

    # --- outcomes ----------------------------------------------------------------------

    def _settle(self, seq: int, outcome: Outcome) -> str:
        """Account for an attempt's outcome; what it came to (one of RESULTS)."""
        entry = self.open[seq]
        event = entry.event
        now_us = time.time_ns() // 1000
        schedule = self.settings.retry_schedule
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
                self._disable("the endpoint answered 410 Gone")
                self.stopping = True
            else:
                heapq.heappush(self.retries, (due, seq))
                if self._failing_too_long(now_us):
                    self._disable("it kept failing for too long")
                    self.stopping = True
            return result
        # succeeded or dead: over; the conversation may move on
        if result == "dead":
            self._dead(event, outcome)
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
        return result

    def _failing_too_long(self, now_us: int) -> bool:
        limit = self.settings.disable_after
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
            if self.inflight >= self.settings.concurrency:
                return
            _due, seq = heapq.heappop(self.retries)
            if seq in self.open:
                self._send(seq)

    # --- the batch to write, and the cursor --------------------------------------------

    def _flush_wanted(self) -> bool:
        first = self.unsettled.first()
        target = self.scan_seq if first is None else first - 1
        return bool(len(self.batch)) or target > self.cursor

    def _take_batch(self) -> tuple[_Batch, int]:
        """The outcomes gathered so far, to be written together with the cursor returned:
        everything read is accounted for, except what is still unsettled."""
        batch, self.batch = self.batch, _Batch()
        for seq in batch.done:
            self.unsettled.discard(seq)
        first = self.unsettled.first()
        return batch, (self.scan_seq if first is None else first - 1)

    def _unwritten(self, batch: _Batch) -> None:
        """Writing the batch failed."""
        for seq in batch.done:
            self.unsettled.add(seq)  # the cursor stays behind them: resent after a restart

    def _written(self, batch: _Batch, cursor: int) -> None:
        """The batch and the cursor taken with it are durable."""
        self.cursor = max(self.cursor, cursor)
        if batch.success_at is not None:
            self.record = self.record.model_copy(update={"failing_since": None})
        elif batch.failed_at is not None and self.record.failing_since is None:
            self.record = self.record.model_copy(
                update={"failing_since": datetime.fromtimestamp(batch.failed_at / US, UTC)}
            )
