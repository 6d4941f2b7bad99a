"""Zalo events carry the time they were sent (signed with them): an event older than
`max_event_age_seconds`, or as far in the future, is a replay and is refused unstored."""

from __future__ import annotations

import time

import pytest

from tests.api.helpers import eventually
from tests.providers import all_messages, db_counts, events, raw_events
from tests.zalo.conftest import Zl, ZlFactory
from tests.zalo.helpers import dump, load, recorded, zalo_time


async def _refused(zl: Zl, body: bytes, code: str) -> None:
    before = db_counts(zl.data_dir)
    resp = await zl.post(body)
    error = (await resp.json())["error"]
    assert resp.status == 400, error
    assert error["code"] == code
    assert db_counts(zl.data_dir) == before
    assert raw_events(zl.data_dir) == []


async def test_a_recorded_event_replayed_later_is_refused_and_kept_nowhere(zl: Zl) -> None:
    # Signed correctly, months ago: whoever holds it can no longer have it stored.
    for name in ("user_send_text", "follow", "user_seen_message"):
        await _refused(zl, dump(recorded(name)), "stale_event")
    assert await all_messages(zl) == []


@pytest.mark.parametrize(
    ("age", "taken"),
    [(0, True), (50, True), (-50, True), (70, False), (-70, False), (3600, False)],
)
async def test_the_window_is_configurable_and_counts_both_ways(
    start_zl: ZlFactory, age: float, taken: bool
) -> None:
    zl = await start_zl(max_event_age_seconds=60)
    event = load("user_send_text")
    event["timestamp"] = zalo_time(time.time() - age)
    if taken:
        assert await zl.deliver(event) == {"received": 1}
        assert len(await all_messages(zl)) == 1
    else:
        await _refused(zl, dump(event), "stale_event")


@pytest.mark.parametrize("stamp", ["", "soon", "-5", "1e12", "99999999999999999999"])
async def test_a_timestamp_that_cannot_be_read_is_refused(zl: Zl, stamp: str) -> None:
    event = load("user_send_text")
    event["timestamp"] = stamp
    await _refused(zl, dump(event), "invalid_timestamp")


async def test_the_default_window_is_an_hour_as_zalo_resends(zl: Zl) -> None:
    event = load("user_send_text")
    event["timestamp"] = zalo_time(time.time() - 3500)  # a resend after a long outage
    await zl.deliver(event)

    async def routed() -> bool:  # routing runs after the ack; let it finish first
        done = [
            *await events(zl, "conversation.assigned"),
            *await events(zl, "conversation.queued"),
        ]
        return bool(done)

    await eventually(routed)
    late = load("user_send_image")
    late["timestamp"] = zalo_time(time.time() - 3700)
    await _refused(zl, dump(late), "stale_event")
    assert len(await all_messages(zl)) == 1
