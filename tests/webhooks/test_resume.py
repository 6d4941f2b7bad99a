"""Webhook delivery across a restart with open rows, at low concurrency.

The receiver fails every attempt at the first message of conversation A, so it is left
`pending` (after a failed retry, its next one a second away) with A's later messages
`waiting` behind it; conversation B goes out meanwhile; the first message of
conversation C hangs in flight when the gateway stops. The gateway is then started again
on the same database with the receiver healthy: everything arrives, in order per
conversation; the pending delivery goes on as a retry, at its time; nothing is sent twice
except events after the durable cursor (at least once, under the same webhook-id); and
no row is left open.

At concurrency 2, C1 goes first and holds the cursor back, so every row is after the
cursor and the restarted worker reads those events again from the log: a delivery resumed
from its row must not be registered a second time, and C2 and C3 must wait for C1 (in
flight at the stop) instead of going out first or being queued ahead of it. At
concurrency 1 nothing else is read while C1 hangs, so C1 comes after A and B, and the
rows are at or before the cursor.

(A kill -9 in the middle of a backlog is tested with a real process in
tests/e2e/test_webhook_restart.py.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from gateway.app import Gateway
from gateway.store import open_store
from gateway.store.records import DeliveryRow
from kernel.envelope import InboundMessage, Sender
from kernel.events import Event
from kernel.ids import ChannelId
from kernel.models import TextPart
from kernel.webhook_signing import new_secret
from tests.api.helpers import eventually
from tests.conftest import GatewayFactory
from tests.webhooks.receiver import Delivery, Receiver

ENDPOINT = "helpdesk"

CONFIG = """
[[channels]]
id = "webchat"
type = "webchat"

[[agents]]
id = "lan"
presence = "online"
capacity = {{ total = 100 }}

[webhook_delivery]
allow_loopback = true
timeout = 10
concurrency = {concurrency}
retry_schedule = [0{retries}]

[[webhooks]]
id = "{endpoint}"
url = "{url}"
events = ["message.received"]
secret = "{secret}"
"""


def config(receiver: Receiver, secret: str, concurrency: int) -> str:
    # The first retry comes quickly; there are enough attempts never to go dead here.
    return CONFIG.format(
        concurrency=concurrency,
        retries=", 0.2" * 29,
        endpoint=ENDPOINT,
        url=receiver.url,
        secret=secret,
    )


@dataclass
class Script:
    """Until healthy: A1 fails every time (from its second attempt on, asking for a retry
    in a second), C1 hangs until released and then fails, everything else is accepted.
    Once healthy, everything is accepted."""

    healthy: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    a1_attempts: int = 0
    a1_healthy_at: list[float] = field(default_factory=list)  # Unix times

    async def __call__(self, delivery: Delivery, _n: int) -> web.StreamResponse:
        text = text_of(delivery)
        if self.healthy:
            if text == "A1":
                self.a1_healthy_at.append(time.time())
            return web.Response(status=200)
        if text == "A1":
            self.a1_attempts += 1
            if self.a1_attempts == 1:
                return web.Response(status=500)
            return web.Response(status=500, headers={"Retry-After": "1"})
        if text == "C1":
            await self.release.wait()
            return web.Response(status=503)
        return web.Response(status=200)


def text_of(delivery: Delivery) -> str:
    text: str = delivery.envelope["data"]["message"]["parts"][0]["text"]
    return text


def accepted(delivery: Delivery) -> bool:
    return delivery.status is not None and 200 <= delivery.status < 300


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def say(gw: Gateway, text: str) -> None:
    """A customer message; its text names it, its letter is its conversation."""
    visitor = f"visitor-{text[0].lower()}"
    await gw.pipeline.ingest(
        InboundMessage(
            channel_id=ChannelId("webchat"),
            external_id=f"{visitor}:{text}",
            sender=Sender(external_id=visitor),
            parts=[TextPart(text=text)],
        )
    )


async def messages(gw: Gateway) -> dict[str, Event]:
    """message.received events by their text."""
    return {
        e.data["message"]["parts"][0]["text"]: e
        for e in await gw.store.events.after(0, 100_000)
        if e.type == "message.received"
    }


async def rows_by_text(gw: Gateway) -> dict[str, DeliveryRow]:
    texts = {e.seq: text for text, e in (await messages(gw)).items()}
    return {texts[r.event_seq]: r for r in await gw.store.webhooks.open_rows(ENDPOINT)}


def statuses(rows: dict[str, DeliveryRow]) -> dict[str, str]:
    return {text: r.status for text, r in rows.items()}


@pytest.mark.parametrize("concurrency", [1, 2], ids=["concurrency-1", "concurrency-2"])
async def test_open_rows_resume_in_order_after_a_restart(
    make_gateway: GatewayFactory,
    receiver: Receiver,
    concurrency: int,
) -> None:
    script = Script()
    receiver.behaviour = script
    secret = new_secret()
    if concurrency > 1:
        order = ["C1", "A1", "A2", "A3", "C2", "C3", "B1", "B2", "B3"]
        sent = ["B1", "B2", "B3"]  # accepted before the stop
        waiting = ["A2", "A3", "C2", "C3"]
    else:
        order = ["A1", "A2", "A3", "B1", "B2", "C1", "C2", "C3", "B3"]
        sent = ["B1", "B2"]
        waiting = ["A2", "A3"]

    # --- before the stop -----------------------------------------------------------------
    gw = await make_gateway(config(receiver, secret, concurrency))

    async def a1_retried() -> bool:
        # still pending after its first retry failed too
        row = (await rows_by_text(gw)).get("A1")
        return row is not None and row.status == "pending" and row.attempts >= 2

    for text in order:
        await say(gw, text)
        if text == "C1":
            await eventually(lambda: _arrived(receiver, "C1"))
        if text == "A1":
            await eventually(a1_retried)

    expected_rows = {"A1": "pending"} | dict.fromkeys(waiting, "waiting")

    async def ready_to_stop() -> bool:
        if not set(sent) <= {text_of(d) for d in receiver.accepted()}:
            return False
        return statuses(await rows_by_text(gw)) == expected_rows

    await eventually(ready_to_stop)
    # B went out while A1 kept failing; nothing queued behind A1 or C1 went out.
    assert not {"A2", "A3", "C2", "C3"} & {text_of(d) for d in receiver.deliveries}
    assert {text_of(d) for d in receiver.accepted()} == set(sent)
    await gw.close_connections()
    await gw.stop()

    # --- what the restart finds ----------------------------------------------------------
    store = await open_store(gw.settings.store_url)
    try:
        events = await store.events.after(0, 100_000)
        at_stop = await store.webhooks.open_rows(ENDPOINT)
        record = await store.webhooks.get(ENDPOINT)
        log_at_stop = await store.webhooks.attempts(ENDPOINT, None, 10_000, None)
    finally:
        await store.close()
    assert record is not None
    cursor = record.cursor
    wanted = [e for e in events if e.type == "message.received"]
    text_by_seq = {e.seq: e.data["message"]["parts"][0]["text"] for e in wanted}
    seq_of = {text: seq for seq, text in text_by_seq.items()}
    assert sorted(text_by_seq.values()) == sorted(order)
    rows = {text_by_seq[r.event_seq]: r for r in at_stop}
    assert statuses(rows) == expected_rows
    pending = rows["A1"]
    assert pending.attempts >= 2
    assert pending.next_attempt_at is not None
    assert pending.attempts == sum(1 for a in log_at_stop if a["event_seq"] == seq_of["A1"])
    if concurrency > 1:
        # C1 was in flight: the cursor is before it, so the restarted worker reads every
        # row's event from the log again.
        assert cursor < seq_of["C1"]
        assert all(r.event_seq > cursor for r in at_stop)

    # --- after the restart ---------------------------------------------------------------
    script.healthy = True
    script.release.set()
    before_restart = len(receiver.deliveries)
    gw = await make_gateway(config(receiver, secret, concurrency))
    all_ids = {e.id for e in wanted}
    left: dict[str, Any] = {}

    async def finished() -> bool:
        open_rows = await gw.store.webhooks.open_rows(ENDPOINT)
        for r in open_rows:
            text = text_by_seq[r.event_seq]
            # A pending row stays a retry (never turned into a waiting one, its attempts
            # kept); a waiting row stays waiting until it is settled.
            if text == "A1" and (r.status != "pending" or r.attempts < pending.attempts):
                pytest.fail(f"A1's pending row (attempts {pending.attempts}) became {r!r}")
            if text in waiting and r.status != "waiting":
                pytest.fail(f"{text}'s waiting row became {r!r}")
        current = await gw.store.webhooks.get(ENDPOINT)
        assert current is not None
        left.update(
            not_accepted=sorted(
                text_by_seq[int(i)] for i in all_ids - {d.id for d in receiver.accepted()}
            ),
            open_rows=[(text_by_seq[r.event_seq], r.status) for r in open_rows],
            cursor_behind=await gw.store.events.last_seq() - current.cursor,
        )
        return not left["not_accepted"] and not left["open_rows"] and not left["cursor_behind"]

    try:
        await eventually(finished, within=5)
    except AssertionError as stalled:
        raise AssertionError(f"delivery stalled after the restart: {left}") from stalled

    # Every delivery is signed and verifies; a repeated webhook-id is the same event again.
    envelopes = receiver.verified(secret)
    bodies: dict[str, set[bytes]] = {}
    for delivery, envelope in zip(receiver.deliveries, envelopes, strict=True):
        assert delivery.id == envelope["id"]
        bodies.setdefault(delivery.id, set()).add(delivery.body)
    assert all(len(b) == 1 for b in bodies.values())

    # In order per conversation: nothing goes out before every earlier event of its
    # conversation was accepted, so first acceptances come in event-id order.
    by_id = {e.id: e for e in wanted}
    conversations: dict[str | None, list[Event]] = {}
    for e in wanted:
        conversations.setdefault(e.conversation_id, []).append(e)
    assert len(conversations) == 3
    done: set[str] = set()
    firsts: dict[str | None, list[str]] = {}
    for delivery in receiver.deliveries:
        event = by_id[delivery.id]
        earlier = {e.id for e in conversations[event.conversation_id] if e.seq < event.seq}
        missing = sorted(text_by_seq[by_id[i].seq] for i in earlier - done)
        assert not missing, f"{text_of(delivery)} went out before {missing} was accepted"
        if accepted(delivery) and delivery.id not in done:
            done.add(delivery.id)
            firsts.setdefault(event.conversation_id, []).append(delivery.id)
    for conversation, ids in firsts.items():
        assert ids == [e.id for e in conversations[conversation]]
        assert ids == sorted(ids)

    # After the restart: each open row's event, and each event after the cursor, goes out
    # exactly once (the receiver accepts everything now); nothing else goes out again.
    after = receiver.deliveries[before_restart:]
    assert all(accepted(d) for d in after)
    resent = {text_by_seq[e.seq] for e in wanted if e.seq > cursor or text_by_seq[e.seq] in rows}
    assert Counter(text_of(d) for d in after) == Counter(resent)

    # The pending delivery went on as a retry: not before its stored time, numbered after
    # the stored attempts.
    assert len(script.a1_healthy_at) == 1
    assert script.a1_healthy_at[0] >= pending.next_attempt_at / 1_000_000
    log = await gw.store.webhooks.attempts(ENDPOINT, None, 10_000, None)
    a1 = sorted((a for a in log if a["event_seq"] == seq_of["A1"]), key=lambda a: a["id"])
    assert [a["attempt"] for a in a1] == list(range(1, pending.attempts + 2))
    assert [a["outcome"] for a in a1] == ["retry"] * pending.attempts + ["succeeded"]
    assert not any(a["outcome"] == "dead" for a in log)


async def test_a_due_retry_waiting_for_the_only_slot_does_not_spin(
    make_gateway: GatewayFactory, receiver: Receiver
) -> None:
    """At concurrency 1, A1's retry falls due while C1 holds the only slot: the worker
    waits for C1 to finish instead of running its loop over and over meanwhile."""
    script = Script()
    receiver.behaviour = script
    gw = await make_gateway(config(receiver, new_secret(), 1))
    await say(gw, "A1")

    async def a1_pending() -> bool:
        row = (await rows_by_text(gw)).get("A1")
        return row is not None and row.status == "pending"

    await eventually(a1_pending)
    await say(gw, "C1")
    await eventually(lambda: _arrived(receiver, "C1"))

    async def a1_row() -> DeliveryRow | None:
        # the row as of A1's last attempt (C1 holds the slot: no other attempt follows)
        row = (await rows_by_text(gw)).get("A1")
        return row if row is not None and row.attempts == script.a1_attempts else None

    row = await eventually(a1_row)
    assert row.next_attempt_at is not None
    due_in = row.next_attempt_at / 1_000_000 - time.time()
    await asyncio.sleep(max(0.0, due_in) + 0.05)  # until the retry is due, C1 still hung

    # With nothing to do but wait for the hung request, the worker must sleep: the
    # process uses next to no CPU over a measuring window (a busy loop would use it all).
    cpu0 = time.process_time()
    await asyncio.sleep(0.3)  # a measuring window, not a wait for a condition
    used = time.process_time() - cpu0
    script.healthy = True
    script.release.set()
    await eventually(lambda: _arrived(receiver, "A1", accepted_only=True))
    assert used < 0.1, f"{used:.2f} s of CPU in 0.3 s with nothing to do"


async def _arrived(receiver: Receiver, text: str, accepted_only: bool = False) -> bool:
    found = receiver.accepted() if accepted_only else receiver.deliveries
    return any(text_of(d) == text for d in found)
