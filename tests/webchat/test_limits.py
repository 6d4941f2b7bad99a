"""The pieces of webchat's limits: client address keys and token buckets by key."""

from __future__ import annotations

import asyncio

import pytest

from connectors.webchat.limits import address_key, history_cost
from kernel.ratelimit import Bucket, LocalBuckets


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("::ffff:203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("not-an-address", "unknown"),
    ],
)
def test_address_key(remote: str | None, key: str) -> None:
    assert address_key(remote) == key


def test_history_cost() -> None:
    assert [history_cost(n) for n in (1, 50, 51, 200)] == [1, 1, 2, 4]


async def test_take_is_all_or_nothing() -> None:
    buckets = LocalBuckets()
    wide, narrow = Bucket("wide", 1.0, 10), Bucket("narrow", 1.0, 2)
    assert await buckets.take(wide, narrow) == 0.0
    assert await buckets.take(wide, narrow) == 0.0
    wait = await buckets.take(wide, narrow)
    assert 0.9 < wait <= 1.0
    # the refusal took nothing from the bucket that had tokens
    assert [await buckets.take(wide) for _ in range(8)] == [0.0] * 8
    assert await buckets.take(wide) > 0


async def test_cost_and_refill() -> None:
    buckets = LocalBuckets()
    b = Bucket("k", 100.0, 10)
    assert await buckets.take(b, cost=4) == 0.0
    assert await buckets.take(b, cost=4) == 0.0
    assert 0.015 < await buckets.take(b, cost=4) <= 0.02
    # a cost above the burst is taken from a full bucket
    fresh = Bucket("other", 1.0, 2)
    assert await buckets.take(fresh, cost=5) == 0.0
    assert await buckets.take(fresh) > 0
    await asyncio.sleep(0.03)
    assert await buckets.take(b, cost=4) == 0.0


async def test_full_buckets_are_forgotten() -> None:
    buckets = LocalBuckets()
    buckets.PRUNE_ABOVE = 100
    for n in range(150):
        await buckets.take(Bucket(f"quick-{n}", 1000.0, 1))
    await buckets.take(Bucket("slow", 0.001, 5))
    await asyncio.sleep(1.05)
    await buckets.take(Bucket("trigger", 1.0, 1))
    # the quick ones refilled and are gone; the slow one still holds its state
    assert set(buckets._state) == {"slow", "trigger"}
    assert buckets._state["slow"][0] < 5


async def test_cost_zero_only_looks() -> None:
    buckets = LocalBuckets()
    b = Bucket("once", 0.001, 1)
    assert [await buckets.take(b, cost=0) for _ in range(3)] == [0.0] * 3
    assert await buckets.take(b) == 0.0
    assert await buckets.take(b, cost=0) > 0
    assert await buckets.take(b) > 0
