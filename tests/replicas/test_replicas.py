"""Three `omnigw serve` processes on one PostgreSQL and one Redis, under load from every
side at once: webchat sockets on every replica, Messenger webhooks to every replica,
agents answering through another, SSE and a helpdesk's webhook endpoint watching.

Checked from the outside (the API, SSE, the endpoint, Meta's Send API) and in the
database: every message stored once, every conversation assigned once, no agent over
capacity, every reply sent once, every event delivered to the endpoint (one webhook-id
each, however often), SSE complete on any replica and resumable on another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.replicas.cluster import Cluster
from tests.replicas.load import (
    FB_CHANNEL,
    HOOK_SECRET,
    Customers,
    GraphApi,
    HookReceiver,
    Stream,
    api,
    channels_config,
    eventually,
    streaming,
)

CAPACITY = {"webchat": 3, "facebook": 3, "total": 4}
TYPES = {"webchat": "webchat", FB_CHANNEL: "facebook"}
AGENTS = [
    {"id": f"agent{i}", "name": f"Nhân viên {i}", "capacity": CAPACITY, "presence": "online"}
    for i in range(6)
]


@dataclass
class World:
    cluster: Cluster
    graph: GraphApi
    hooks: HookReceiver
    pg_url: str


@contextlib.asynccontextmanager
async def world(tmp_path: Path, pg_url: str, redis_url: str, replicas: int) -> AsyncIterator[World]:
    graph, hooks = GraphApi(), HookReceiver()
    await graph.start()
    await hooks.start()
    try:
        async with Cluster.started(
            tmp_path,
            pg_url,
            redis_url,
            replicas=replicas,
            channels=channels_config(graph),
            agents=AGENTS,
            webhooks=[{"id": "helpdesk", "url": hooks.url + "/hook", "secret": HOOK_SECRET}],
            sections={"webhook_delivery": {"allow_loopback": True}},
        ) as cluster:
            yield World(cluster, graph, hooks, pg_url)
    finally:
        await graph.close()
        await hooks.close()


@dataclass
class Helpdesk:
    """Agents at work: each assignment seen on SSE gets a reply through one replica, then
    is resolved through another (which frees the slot for the queue)."""

    reply_via: Any
    resolve_via: Any
    replies: dict[str, str] = field(default_factory=dict)  # reply text -> conversation
    handled: int = 0

    async def run(self, http: aiohttp.ClientSession, stream: Stream) -> None:
        seen = 0
        while True:
            await stream.until(lambda n=seen: len(stream.events) > n, within=3600)
            fresh, seen = stream.events[seen:], len(stream.events)
            for event in fresh:
                if event["type"] == "conversation.assigned":
                    await self._answer(http, event["data"]["conversation"]["id"])

    async def _answer(self, http: aiohttp.ClientSession, conversation_id: str) -> None:
        text = f"Dạ, shop trả lời {conversation_id} lần {len(self.replies)}"
        status, body = await api(
            http,
            self.reply_via,
            "POST",
            f"/v1/conversations/{conversation_id}/messages",
            json={"text": text},
        )
        assert status == 202, body
        self.replies[text] = conversation_id
        status, body = await api(
            http, self.resolve_via, "POST", f"/v1/conversations/{conversation_id}/resolve"
        )
        assert status == 200, body
        self.handled += 1


async def db_rows(pg_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def check_routing(pg_url: str) -> int:
    """Replays the event log: nobody assigned twice at once, nobody over capacity.
    Returns the number of assignments."""
    events = await db_rows(
        pg_url,
        "SELECT seq, type, conversation_id, data::jsonb AS data FROM events "
        "WHERE type LIKE 'conversation.%' ORDER BY seq",
    )
    holder: dict[str, str] = {}
    load: Counter[tuple[str, str]] = Counter()
    assignments = 0
    for row in events:
        data = json.loads(row["data"])
        conv = data.get("conversation") or {}
        cid = row["conversation_id"]
        if row["type"] == "conversation.assigned":
            assert cid not in holder, f"{cid} assigned again while held by {holder.get(cid)}"
            agent = conv["assignee_id"]
            holder[cid] = agent
            kind = TYPES[conv["channel_id"]]
            load[(agent, kind)] += 1
            load[(agent, "total")] += 1
            assert load[(agent, kind)] <= CAPACITY[kind], f"{agent} over {kind} capacity"
            assert load[(agent, "total")] <= CAPACITY["total"], f"{agent} over capacity"
            assignments += 1
        elif row["type"] in ("conversation.resolved", "conversation.queued") and cid in holder:
            agent = holder.pop(cid)
            load[(agent, TYPES[conv["channel_id"]])] -= 1
            load[(agent, "total")] -= 1
    return assignments


# Two thousand messages through three processes: far under a minute on an idle machine,
# longer when the machine is shared; its own waits bound each stage.
@pytest.mark.timeout(300)
async def test_three_replicas_share_the_work(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    visitors, messengers, each = 150, 50, 10
    async with (
        world(tmp_path, pg_url, redis_url, replicas=3) as w,
        aiohttp.ClientSession() as http,
        streaming(http, w.cluster[0], last_event_id="0") as sse,
    ):
        c = w.cluster
        customers = Customers(c.replicas)
        desk = Helpdesk(reply_via=c[2], resolve_via=c[1])
        agents = asyncio.create_task(desk.run(http, sse))
        started = time.monotonic()
        await asyncio.gather(
            # Paced, so that answers and resolutions cross new messages (reopenings).
            *(customers.visitor(http, n, each, pause=0.05) for n in range(visitors)),
            *(customers.messenger_user(http, n, each, pause=0.05) for n in range(messengers)),
        )
        load_seconds = time.monotonic() - started
        total = (visitors + messengers) * each
        assert len(customers.acked) == total

        async def settled() -> bool:
            rows = await db_rows(
                w.pg_url,
                "SELECT count(*) FILTER (WHERE status <> 'resolved') AS open, "
                "(SELECT count(*) FROM messages WHERE status = 'pending') AS pending "
                "FROM conversations",
            )
            return rows[0]["open"] == 0 and rows[0]["pending"] == 0

        await eventually(settled, within=90, what="every conversation answered and resolved")
        agents.cancel()
        await asyncio.gather(agents, return_exceptions=True)

        # Every message stored once.
        stored = await db_rows(
            w.pg_url, "SELECT external_id FROM messages WHERE direction = 'inbound'"
        )
        assert sorted(r[0] for r in stored) == sorted(customers.acked), "stored != acked"
        # Every conversation assigned once at a time, nobody over capacity.
        assignments = await check_routing(w.pg_url)
        assert assignments == desk.handled
        # Every reply sent once: Messenger's to Meta, webchat's marked sent.
        fb_texts = Counter(b["message"]["text"] for b in w.graph.sent)
        assert all(n == 1 for n in fb_texts.values()), fb_texts.most_common(3)
        outbound = await db_rows(
            w.pg_url,
            "SELECT channel_id, status, parts::text FROM messages WHERE direction = 'outbound'",
        )
        assert len(outbound) == len(desk.replies)
        assert {r["status"] for r in outbound} == {"sent"}
        fb_replies = [r for r in outbound if r["channel_id"] == FB_CHANNEL]
        assert len(fb_texts) == len(fb_replies)

        seqs = [r[0] for r in await db_rows(w.pg_url, "SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "the event log has gaps"
        # SSE on replica 0: complete, in order.
        await sse.until(lambda: len(sse.events) >= len(seqs), within=30)
        assert sse.ids() == seqs
        # Resumed on another replica from the middle: exactly the rest.
        middle = seqs[len(seqs) // 2]
        async with streaming(http, c[1], last_event_id=str(middle)) as resumed:
            await resumed.until(lambda: len(resumed.events) >= len(seqs) - middle, within=30)
            assert resumed.ids() == seqs[middle:]
            assert resumed.events == sse.events[middle:]

        # Every event delivered to the endpoint, each with one webhook-id however often.
        async def all_delivered() -> bool:
            return len(w.hooks.by_event()) >= len(seqs)

        await eventually(all_delivered, within=60, what="every event delivered")
        delivered = w.hooks.by_event()
        assert sorted(int(k) for k in delivered) == seqs
        assert all(len(ids) == 1 for ids in delivered.values())
        assert w.hooks.bad == 0
        print(
            f"\n{total} messages over 3 replicas in {load_seconds:.1f}s "
            f"({total / load_seconds:.0f}/s), {assignments} assignments, "
            f"{len(desk.replies)} replies, {len(seqs)} events, "
            f"{len(w.hooks.deliveries)} deliveries"
        )


async def test_a_reply_reaches_the_socket_held_by_another_replica(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    async with (
        world(tmp_path, pg_url, redis_url, replicas=2) as w,
        aiohttp.ClientSession() as http,
        http.ws_connect(w.cluster[0].ws_url) as ws,
    ):
        session = await ws.receive_json(timeout=10)
        started = time.monotonic()
        await ws.send_json({"type": "message", "client_id": "c1", "text": "Xin chào shop"})
        ack = await ws.receive_json(timeout=10)
        assert ack["type"] == "ack"

        async def assigned() -> Any:
            status, body = await api(http, w.cluster[1], "GET", "/v1/conversations?status=assigned")
            return body["items"] if status == 200 else None

        (conv,) = await eventually(assigned, within=10, every=0.02, what="assignment")
        routed = time.monotonic() - started
        assert conv["contact_id"]
        # The visitor's own next message comes back as its ack only, never as a message.
        await ws.send_json({"type": "message", "client_id": "c2", "text": "Còn hàng không?"})
        assert (await ws.receive_json(timeout=10))["type"] == "ack"
        with pytest.raises(TimeoutError):
            await ws.receive_json(timeout=0.5)
        # An agent typing and replying on replica 1: both reach the socket on replica 0.
        status, _ = await api(
            http,
            w.cluster[1],
            "POST",
            f"/v1/conversations/{conv['id']}/typing",
            json={"state": "on"},
        )
        assert status in (200, 202, 204)
        frame = await ws.receive_json(timeout=10)
        assert frame == {"type": "typing", "state": "on"}
        sent_at = time.monotonic()
        status, body = await api(
            http,
            w.cluster[1],
            "POST",
            f"/v1/conversations/{conv['id']}/messages",
            json={"text": "Dạ, shop nghe ạ"},
        )
        assert status == 202, body
        frame = await ws.receive_json(timeout=10)
        assert frame["type"] == "message", frame
        assert frame["message"]["id"] == body["id"]
        assert frame["message"]["parts"][0]["text"] == "Dạ, shop nghe ạ"
        crossed = time.monotonic() - sent_at
        # Shown once: nothing else arrives.
        with pytest.raises(TimeoutError):
            await ws.receive_json(timeout=1.0)
        assert session["visitor_id"]
        assert routed < 2.0 and crossed < 2.0, (routed, crossed)
        print(
            f"\nrouted in {routed * 1000:.0f} ms; reply crossed replicas in {crossed * 1000:.0f} ms"
        )
