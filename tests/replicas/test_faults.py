"""Replicas under faults: one killed with SIGKILL mid-load, Redis restarted mid-load,
PostgreSQL stopped for 30 seconds. Nothing acknowledged is lost, work held by the dead
replica is taken over within the lease's bound, and everything resumes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.replicas.load import Customers, api, eventually, streaming
from tests.replicas.test_replicas import Helpdesk, check_routing, db_rows, world
from tests.servers import PgServer, RedisServer

LEASE_SECONDS = 4  # tests/replicas/cluster.py's config


async def inbound_external_ids(pg_url: str) -> list[str]:
    rows = await db_rows(pg_url, "SELECT external_id FROM messages WHERE direction = 'inbound'")
    return sorted(r[0] for r in rows)


async def all_seqs(pg_url: str) -> list[int]:
    return [r[0] for r in await db_rows(pg_url, "SELECT seq FROM events ORDER BY seq")]


async def test_a_replica_killed_mid_load_loses_nothing(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    killed: set[int] = set()
    async with world(tmp_path, pg_url, redis_url, replicas=3) as w, aiohttp.ClientSession() as http:
        c = w.cluster
        # The replica delivering to the helpdesk's endpoint is the one to kill.
        holder = await eventually(
            lambda: _lease_holder(w.pg_url, "webhook:helpdesk"), within=10, what="a lease"
        )
        victim = next(i for i in range(3) if _pid_in(holder, c[i].proc.pid))
        watch = c[(victim + 1) % 3]
        sse_cm = streaming(http, watch, last_event_id="0")
        sse = await sse_cm.__aenter__()
        customers = Customers(c.replicas, alive=lambda i: i not in killed)
        desk = Helpdesk(reply_via=watch, resolve_via=watch)
        agents = asyncio.create_task(desk.run(http, sse))

        async def kill_when_busy() -> float:
            await eventually(
                lambda: _true(len(customers.acked) >= 300), within=60, every=0.02, what="load"
            )
            killed.add(victim)
            c.kill(victim)
            return time.monotonic()

        killer = asyncio.create_task(kill_when_busy())
        await asyncio.gather(
            *(customers.visitor(http, n, 8, pause=0.05) for n in range(60)),
            *(customers.messenger_user(http, n, 8, pause=0.05) for n in range(30)),
        )
        killed_at = await killer
        assert c[victim].proc.returncode == -9

        # Its leases go to the others within the bound.
        deliveries_before = len(w.hooks.deliveries)
        new_holder = await eventually(
            lambda: _lease_holder(w.pg_url, "webhook:helpdesk", not_pid=c[victim].proc.pid),
            within=LEASE_SECONDS + 10,
            every=0.1,
            what="the endpoint's lease taken over",
        )
        taken_over = time.monotonic() - killed_at
        assert new_holder

        async def settled() -> bool:
            rows = await db_rows(
                w.pg_url,
                "SELECT (SELECT count(*) FROM conversations WHERE status <> 'resolved') AS open, "
                "(SELECT count(*) FROM messages WHERE status = 'pending') AS pending",
            )
            return rows[0]["open"] == 0 and rows[0]["pending"] == 0

        await eventually(settled, within=90, what="everything answered after the kill")
        agents.cancel()
        await asyncio.gather(agents, return_exceptions=True)

        # Every acknowledged message stored, once.
        assert await inbound_external_ids(w.pg_url) == sorted(customers.acked)
        await check_routing(w.pg_url)
        seqs = await all_seqs(w.pg_url)
        assert seqs == list(range(1, len(seqs) + 1))
        await sse.until(lambda: len(sse.events) >= len(seqs), within=30)
        assert sse.ids() == seqs

        async def all_delivered() -> bool:
            return len(w.hooks.by_event()) >= len(seqs)

        await eventually(all_delivered, within=60, what="every event delivered after the kill")
        delivered = w.hooks.by_event()
        assert sorted(int(k) for k in delivered) == seqs
        assert all(len(ids) == 1 for ids in delivered.values()), "a retry changed webhook-id"
        assert len(w.hooks.deliveries) > deliveries_before
        assert taken_over < LEASE_SECONDS + 3, taken_over
        await sse_cm.__aexit__(None, None, None)
        print(
            f"\nkilled replica {victim} after 300 acks; its lease was taken over in "
            f"{taken_over:.1f}s (bound {LEASE_SECONDS}s); {customers.retries} customer retries; "
            f"{len(w.hooks.deliveries) - len(delivered)} deliveries repeated"
        )


async def test_redis_restarted_mid_load(
    tmp_path: Path, pg_url: str, redis_url: str, redis_server: RedisServer
) -> None:
    async with (
        world(tmp_path, pg_url, redis_url, replicas=2) as w,
        aiohttp.ClientSession() as http,
        streaming(http, w.cluster[0], last_event_id="0") as sse,
    ):
        c = w.cluster
        customers = Customers([c[1]])  # written on replica 1, watched on replica 0
        latencies: dict[str, list[float]] = {"before": [], "without": [], "after": []}

        async def probe(phase: str, n: int) -> None:
            """A message on replica 1 until its event shows on replica 0's stream."""
            for _ in range(n):
                visitor = 1000 + list(latencies).index(phase) * 100 + len(latencies[phase])
                started = time.monotonic()
                await customers.visitor(http, visitor, 1)
                external_id = f"{customers.visitor_ids[visitor]}:m0"
                await sse.until(lambda x=external_id: x in received(), within=20)
                latencies[phase].append(time.monotonic() - started)

        def received() -> set[str]:
            return {
                e["data"]["message"]["external_id"]
                for e in sse.events
                if e["type"] == "message.received"
            }

        load = asyncio.gather(*(customers.visitor(http, n, 12, pause=0.2) for n in range(20)))
        await probe("before", 10)
        await asyncio.to_thread(redis_server.stop)
        try:

            async def says_unreachable() -> Any:
                status, body = await api(http, c[0], "GET", "/readyz")
                return status == 200 and body["redis"].startswith("unreachable") and body

            await eventually(says_unreachable, within=15, what="/readyz reporting Redis")
            await probe("without", 10)
        finally:
            await asyncio.to_thread(redis_server.start)

        async def says_ok() -> Any:
            status, body = await api(http, c[0], "GET", "/readyz")
            return status == 200 and body["redis"] == "ok"

        await eventually(says_ok, within=20, what="/readyz with Redis back")
        await probe("after", 10)
        await load

        assert await inbound_external_ids(w.pg_url) == sorted(customers.acked)
        seqs = await all_seqs(w.pg_url)
        await sse.until(lambda: len(sse.events) >= len(seqs), within=30)
        assert sse.ids() == seqs
        median = {k: sorted(v)[len(v) // 2] for k, v in latencies.items()}
        # Without Redis, replicas poll the store (every 0.5 s); with it back, wake-ups are
        # fast again.
        assert median["without"] > median["before"], median
        assert median["after"] < 0.25, median
        print(f"\nmedian frame->other replica's SSE: {median}")


async def test_postgres_stopped_for_30_seconds(
    tmp_path: Path, pg_url: str, redis_url: str, pg_server: PgServer
) -> None:
    async with (
        world(tmp_path, pg_url, redis_url, replicas=2) as w,
        aiohttp.ClientSession() as http,
    ):
        c = w.cluster
        customers = Customers(c.replicas)
        await customers.messenger_user(http, 1, 3)
        await asyncio.to_thread(pg_server.stop)
        stopped = time.monotonic()
        try:
            # Intake answers 503 (the provider retries); /readyz says why.
            status, body = await api(http, c[0], "GET", "/readyz")
            assert status == 503, body
            assert body["store"].startswith("unreachable"), body
            retried = asyncio.create_task(customers.messenger_user(http, 2, 3))
            async with http.ws_connect(c[1].ws_url) as ws:
                session = await ws.receive_json(timeout=15)
                assert session["type"] == "session", session
                await ws.send_json({"type": "message", "client_id": "c1", "text": "Có ai không?"})
                answer = await ws.receive_json(timeout=15)
                # Never a false ack: the visitor is told to send it again.
                assert answer["type"] == "error" and answer["client_id"] == "c1", answer
            await asyncio.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
            assert not retried.done(), "a message was acknowledged while the store was down"
        finally:
            await asyncio.to_thread(pg_server.start)

        async def ready() -> bool:
            results = [await api(http, gw, "GET", "/readyz") for gw in c.replicas]
            return all(status == 200 for status, _ in results)

        await eventually(ready, within=30, what="every replica ready again")
        await asyncio.wait_for(retried, 60)
        await customers.messenger_user(http, 3, 3)
        assert await inbound_external_ids(w.pg_url) == sorted(customers.acked)
        assert customers.retries > 0
        async with streaming(http, c[1], last_event_id="0") as sse:
            seqs = await all_seqs(w.pg_url)
            await sse.until(lambda: len(sse.events) >= len(seqs), within=30)
            assert sse.ids() == seqs


async def _lease_holder(pg_url: str, name: str, not_pid: int | None = None) -> str | None:
    rows = await db_rows(
        pg_url, "SELECT owner FROM leases WHERE name = $1 AND until > clock_timestamp()", name
    )
    if not rows:
        return None
    owner: str = rows[0][0]
    if not_pid is not None and _pid_in(owner, not_pid):
        return None
    return owner


def _pid_in(owner: str | None, pid: int) -> bool:
    return owner is not None and owner.split(":")[1] == str(pid)


async def _true(value: bool) -> bool:
    return value
