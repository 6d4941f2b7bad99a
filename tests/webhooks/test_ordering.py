"""The ordering bookkeeping of one endpoint on its own, without a worker, a store or a
network: which events go out now, which wait behind an earlier event of their
conversation, and how far the cursor may move."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from config.webhooks import DeliverySettings
from gateway.store.records import DeliveryRow, WebhookRecord
from gateway.webhooks.ordering import Ordering, _Batch
from gateway.webhooks.sending import Outcome
from kernel.events import Event


class Book(Ordering):
    """The bookkeeping with its sends noted instead of made. As the worker does, a send
    counts as a request in flight and as an attempt; `answer` is what the worker's sender
    does when a request finishes."""

    def __init__(
        self,
        *,
        cursor: int = 0,
        concurrency: int = 8,
        retry_schedule: Sequence[float] = (0.0, 0.0, 0.0),
        events: Sequence[str] = ("message.*",),
    ) -> None:
        record = WebhookRecord(
            id="wh_test",
            url="https://helpdesk.example/hook",
            events=list(events),
            cursor=cursor,
            sealed_secrets="",
        )
        settings = DeliverySettings(concurrency=concurrency, retry_schedule=list(retry_schedule))
        super().__init__(record, settings)
        self.sent: list[int] = []
        self.disabled: list[str] = []

    def _send(self, seq: int) -> None:
        self.inflight += 1
        self.open[seq].attempts += 1
        self.sent.append(seq)

    def _disable(self, reason: str) -> None:
        self.disabled.append(reason)

    def read(self, *events: Event) -> None:
        self._took(list(events))
        self._fill()

    def answer(self, seq: int, status: int) -> None:
        self.inflight -= 1
        self._settle(seq, Outcome(status, 1.0))
        self._fill()

    def flush(self) -> _Batch:
        """Take the batch and the cursor, as written successfully."""
        batch, cursor = self._take_batch()
        self._written(batch, cursor)
        return batch


def event(seq: int, conversation: str | None, type_: str = "message.received") -> Event:
    return Event(seq, type_, datetime.now(UTC), "{}", conversation)


def rows(batch: _Batch) -> list[tuple[int, str]]:
    return [(r.event_seq, r.status) for r in batch.rows]


def test_an_event_waits_behind_an_unsettled_earlier_event_of_its_conversation() -> None:
    book = Book()
    book.read(event(1, "a"), event(2, "b"), event(3, "a"))
    assert book.sent == [1, 2]  # 3 waits behind 1; b is not held up
    assert rows(book.batch) == [(3, "waiting")]

    book.answer(2, 200)
    assert book.sent == [1, 2]  # another conversation's outcome frees nothing for a
    book.answer(1, 200)
    assert book.sent == [1, 2, 3]  # its head settled: 3 goes now
    book.answer(3, 200)
    assert book.batch.settled == [3]  # its waiting row is over
    assert not book.busy
    assert not book.open


def test_no_more_than_the_limit_in_flight_and_a_free_slot_is_refilled_at_once() -> None:
    book = Book(concurrency=2)
    book.read(event(1, "a"), event(2, "b"), event(3, "c"))
    assert book.sent == [1, 2]
    book.answer(2, 204)
    assert book.sent == [1, 2, 3]
    assert book.inflight == 2


def test_a_retry_holds_its_conversation_until_it_is_delivered() -> None:
    book = Book()
    book.read(event(1, "a"), event(2, "a"), event(3, "b"))
    book.answer(1, 500)
    assert book.sent == [1, 3]
    assert rows(book.batch) == [(2, "waiting"), (1, "pending")]
    book.answer(3, 200)
    assert book.sent == [1, 3]  # 2 still waits behind the retry

    book._retry_due()  # (the schedule retries at once)
    assert book.sent == [1, 3, 1]
    book.answer(1, 200)
    assert book.sent == [1, 3, 1, 2]
    assert [(a.event_seq, a.attempt, a.outcome) for a in book.batch.attempts] == [
        (1, 1, "retry"),
        (3, 1, "succeeded"),
        (1, 2, "succeeded"),
    ]
    assert book.retrying == 0


def test_the_cursor_never_passes_an_unsettled_event() -> None:
    book = Book()
    book.read(event(1, "a"), event(2, "b"), event(3, "a"), event(4, None, "contact.created"))
    book.answer(2, 200)
    book.flush()
    assert book.cursor == 0  # 1 is in flight, without a row: sent again after a crash

    book.answer(1, 200)  # 3 goes out now
    book.flush()
    # 3 is in flight but has its `waiting` row; 4 is not wanted by this endpoint.
    assert book.cursor == 4


def test_a_failed_write_keeps_the_cursor_behind_what_it_held() -> None:
    book = Book()
    book.read(event(1, "a"))
    book.answer(1, 200)
    batch, cursor = book._take_batch()
    assert cursor == 1
    book._unwritten(batch)  # the store failed: the outcome is not durable
    assert book.cursor == 0
    assert book._take_batch()[1] == 0


def test_410_disables_the_endpoint_and_nothing_new_goes_out() -> None:
    book = Book()
    book.read(event(1, "a"))
    book.answer(1, 410)
    assert book.disabled == ["the endpoint answered 410 Gone"]
    assert rows(book.batch) == [(1, "pending")]  # it goes out once the endpoint is enabled
    book.read(event(2, "b"))
    assert book.sent == [1]


def test_a_resumed_pending_row_goes_on_as_a_retry_before_its_conversation() -> None:
    book = Book(cursor=2)
    due_us = int((time.time() - 1) * 1_000_000)
    left = [
        DeliveryRow(
            event_seq=1, conversation_id="a", status="pending", attempts=2, next_attempt_at=due_us
        ),
        DeliveryRow(event_seq=2, conversation_id="a", status="waiting"),
    ]
    book._resume_rows(left, {1: event(1, "a"), 2: event(2, "a")})
    assert book.sent == []
    book._retry_due()
    assert book.sent == [1]
    book.answer(1, 200)
    assert book.sent == [1, 2]
    assert [(a.event_seq, a.attempt) for a in book.batch.attempts] == [(1, 3)]
    book.answer(2, 200)
    assert sorted(book.batch.settled) == [1, 2]


def test_after_a_restart_an_event_in_flight_at_the_stop_goes_before_the_rows_behind_it() -> None:
    """1 was in flight (no row) and 3 waiting behind it when the gateway stopped; the
    cursor is before both, so both are read again: 1 goes first, 3 once 1 settles, and 3
    is not taken a second time as a new event."""
    book = Book(cursor=0)
    book._resume_rows(
        [DeliveryRow(event_seq=3, conversation_id="c", status="waiting")], {3: event(3, "c")}
    )
    assert book.sent == []
    book.read(event(1, "c"), event(2, "d"), event(3, "c"))
    assert book.sent == [2, 1]
    book.answer(1, 200)
    assert book.sent == [2, 1, 3]
    book.answer(2, 200)
    book.answer(3, 200)
    assert [(a.event_seq, a.attempt) for a in book.batch.attempts] == [(1, 1), (2, 1), (3, 1)]
    book.flush()
    assert book.cursor == 3
    assert not book.open
