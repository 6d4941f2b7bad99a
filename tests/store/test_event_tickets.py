"""Event-stream tickets in the store (both backends): kept by hash, used once, gone when
used or expired; of two redemptions at once, on two replicas too, one gets the ticket."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from gateway.store import Store, open_store
from tests.store.backends import Backend


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_a_ticket_is_redeemed_once(store: Store, backend: Backend) -> None:
    before = datetime.now(UTC)
    expires = await store.tokens.add_ticket(digest("t1"), "tok_1", digest("token"), 60)
    assert before + timedelta(seconds=59) < expires <= datetime.now(UTC) + timedelta(seconds=60)
    assert await backend.fetch("SELECT ticket_hash, token_id, token_hash FROM event_tickets") == [
        (digest("t1"), "tok_1", digest("token"))
    ]
    record = await store.tokens.redeem_ticket(digest("t1"))
    assert record is not None
    assert (record.token_id, record.token_hash) == ("tok_1", digest("token"))
    assert abs((record.expires_at - expires).total_seconds()) < 0.001
    assert digest("token") not in repr(record)
    assert await store.tokens.redeem_ticket(digest("t1")) is None  # used
    assert await store.tokens.redeem_ticket(digest("t2")) is None  # never made
    assert await backend.fetch("SELECT ticket_hash FROM event_tickets") == []


async def test_an_expired_ticket_is_worth_nothing_and_goes(store: Store, backend: Backend) -> None:
    await store.tokens.add_ticket(digest("short"), "tok_1", digest("token"), 0.05)
    await store.tokens.add_ticket(digest("old"), "tok_1", digest("token"), 0.05)
    await asyncio.sleep(0.1)
    assert await store.tokens.redeem_ticket(digest("short")) is None
    assert await backend.fetch("SELECT ticket_hash FROM event_tickets") == [(digest("old"),)]
    # expired tickets are deleted when another is made
    await store.tokens.add_ticket(digest("new"), "tok_2", digest("other"), 60)
    assert await backend.fetch("SELECT ticket_hash FROM event_tickets") == [(digest("new"),)]
    found = await store.tokens.redeem_ticket(digest("new"))
    assert found is not None and found.token_id == "tok_2"


async def test_of_two_redemptions_at_once_one_wins(store: Store, backend: Backend) -> None:
    # On PostgreSQL a second store is another replica over the same database.
    other = await open_store(backend.url) if backend.name == "postgres" else store
    try:
        names = [f"race-{i}" for i in range(20)]
        for name in names:
            await store.tokens.add_ticket(digest(name), "tok_1", digest("token"), 60)
        results = await asyncio.gather(
            *(s.tokens.redeem_ticket(digest(name)) for name in names for s in (store, other))
        )
        won = [r for r in results if r is not None]
        assert len(won) == len(names)
        for i in range(len(names)):
            pair = results[2 * i : 2 * i + 2]
            assert sum(r is not None for r in pair) == 1, names[i]
    finally:
        if other is not store:
            await other.close()
