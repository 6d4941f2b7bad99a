"""Durability across kill -9: acknowledged messages and the event log survive a crash."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import AUTH, GatewayProcess, Gateways

VISITORS = 20
MESSAGES_EACH = 10  # below the default per-socket burst (20), so no message is rate limited
FRAME_TIMEOUT = 10.0
SSE_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None)


@pytest.fixture
async def gateways(tmp_path: Path) -> AsyncIterator[Gateways]:
    gws = Gateways(tmp_path / "logs")
    try:
        yield gws
    finally:
        gws.close()


@dataclass
class Visitor:
    token: str
    visitor_id: str
    # client_id -> (message_id, text), in send order
    acked: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def message_ids(self) -> list[str]:
        return [mid for mid, _ in self.acked.values()]


async def open_socket(
    http: aiohttp.ClientSession, gw: GatewayProcess, token: str | None = None
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    url = gw.ws_url + (f"?token={token}" if token else "")
    ws = await http.ws_connect(url)
    session = await ws.receive_json(timeout=FRAME_TIMEOUT)
    assert session["type"] == "session", session
    return ws, session


async def say(ws: aiohttp.ClientWebSocketResponse, client_id: str, text: str) -> str:
    await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    frame = await ws.receive_json(timeout=FRAME_TIMEOUT)
    assert frame.get("type") == "ack" and frame.get("client_id") == client_id, frame
    message_id: str = frame["message_id"]
    assert message_id
    return message_id


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url, headers=AUTH) as resp:
        body = await resp.json()
        assert resp.status == 200, (url, body)
        return body


async def all_pages(http: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        sep = "&" if "?" in url else "?"
        page = await get_json(
            http, url + sep + "limit=200" + (f"&cursor={cursor}" if cursor else "")
        )
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


async def post_reply(
    http: aiohttp.ClientSession, gw: GatewayProcess, conv_id: str, text: str
) -> str:
    url = gw.url(f"/v1/conversations/{conv_id}/messages")
    async with http.post(url, json={"text": text}, headers=AUTH) as resp:
        body = await resp.json()
        assert resp.status == 202, body
    assert body["status"] == "pending", body
    reply_id: str = body["id"]
    return reply_id


async def test_acked_messages_survive_kill_9(gateways: Gateways, tmp_path: Path) -> None:
    data = tmp_path / "data"
    gw = await gateways.start(data)
    total = VISITORS * MESSAGES_EACH
    acks = 0
    visitors: list[Visitor] = []

    async def chat(http: aiohttp.ClientSession, n: int) -> None:
        nonlocal acks
        ws, session = await open_socket(http, gw)
        visitor = Visitor(session["token"], session["visitor_id"])
        visitors.append(visitor)
        for i in range(MESSAGES_EACH):
            client_id = f"v{n}-m{i}"
            text = f"Khách {n} hỏi lần {i}: đơn hàng #{1000 + n} đã giao chưa?"
            visitor.acked[client_id] = (await say(ws, client_id, text), text)
            acks += 1
            if acks == total:
                # The crash comes right behind the last ack: nothing gets a chance to flush.
                gw.kill()

    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(
            *(chat(http, n) for n in range(VISITORS)), return_exceptions=True
        )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert not failures, f"{failures!r}\n{gw.stderr_text()}"
    assert gw.proc.returncode == -9, "the gateway must have died by SIGKILL"
    acked_ids = [mid for v in visitors for mid in v.message_ids]
    assert len(acked_ids) == total
    assert len(set(acked_ids)) == total, "every message must get its own id"

    gw = await gateways.start(data)
    async with aiohttp.ClientSession() as http:
        conversations = await all_pages(http, gw.url("/v1/conversations"))
        assert len(conversations) == VISITORS, conversations
        seen_conversations: set[str] = set()

        for n, visitor in enumerate(visitors):
            ws, session = await open_socket(http, gw, visitor.token)
            try:
                assert session["visitor_id"] == visitor.visitor_id
                conv_id = session["conversation_id"]
                assert conv_id is not None, "a returning visitor must get their conversation"
                seen_conversations.add(conv_id)

                stored = await all_pages(http, gw.url(f"/v1/conversations/{conv_id}/messages"))
                assert [m["id"] for m in stored] == visitor.message_ids, (
                    f"visitor {n}: stored messages differ from the acknowledged ones"
                )
                for m, (_, text) in zip(stored, visitor.acked.values(), strict=True):
                    assert m["conversation_id"] == conv_id
                    assert m["direction"] == "inbound"
                    assert m["parts"] == [{"type": "text", "text": text}]

                if n % 2 == 0:
                    await ws.send_json({"type": "history", "limit": 50})
                    history = await ws.receive_json(timeout=FRAME_TIMEOUT)
                    assert history["type"] == "history", history
                    assert [m["id"] for m in history["messages"]] == visitor.message_ids

                # The same client_id after the crash is the same message, not a new one.
                last_client_id, (last_id, last_text) = list(visitor.acked.items())[-1]
                assert await say(ws, last_client_id, last_text) == last_id
            finally:
                await ws.close()

            again = await all_pages(http, gw.url(f"/v1/conversations/{conv_id}/messages"))
            assert [m["id"] for m in again] == visitor.message_ids, (
                f"visitor {n}: resending a client_id stored a duplicate"
            )

        assert seen_conversations == {c["id"] for c in conversations}
    assert gw.terminate() == 0, gw.stderr_text()


# --- SSE resume ------------------------------------------------------------------------


@dataclass(frozen=True)
class SseEvent:
    id: str
    type: str
    envelope: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.id)


class SseReader:
    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp
        self.events: list[SseEvent] = []

    async def next_event(self) -> SseEvent:
        fields: dict[str, str] = {}
        while True:
            raw = await self.resp.content.readline()
            if not raw:
                raise EOFError("the event stream ended")
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line:
                key, _, value = line.partition(":")
                fields[key] = value.removeprefix(" ")
                continue
            if "data" not in fields:  # e.g. the "retry:" preamble
                fields.clear()
                continue
            assert "id" in fields and "event" in fields, fields
            event = SseEvent(fields["id"], fields["event"], json.loads(fields["data"]))
            self.events.append(event)
            return event

    async def read_until(self, done: Any, what: str, within: float = 15.0) -> list[SseEvent]:
        """Read until ``done(events so far)`` holds."""
        try:
            async with asyncio.timeout(within):
                while not done(self.events):
                    await self.next_event()
        except TimeoutError:
            raise AssertionError(
                f"no {what} within {within}s; got {[(e.id, e.type) for e in self.events]}"
            ) from None
        return self.events


def received_ids(events: list[SseEvent]) -> list[str]:
    return [e.envelope["data"]["message"]["id"] for e in events if e.type == "message.received"]


def sent_ids(events: list[SseEvent]) -> list[str]:
    return [e.envelope["data"]["message"]["id"] for e in events if e.type == "message.sent"]


def check_stream(events: list[SseEvent]) -> None:
    for e in events:
        assert re.fullmatch(r"\d+", e.id), e.id
        assert e.envelope["id"] == e.id and e.envelope["type"] == e.type, e
    seqs = [e.seq for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs)), seqs


async def test_sse_resumes_without_gaps_across_kill_9(gateways: Gateways, tmp_path: Path) -> None:
    data = tmp_path / "data"
    gw = await gateways.start(data)
    sent: list[str] = []

    async def burst(ws: aiohttp.ClientWebSocketResponse, prefix: str, count: int) -> list[str]:
        ids = [await say(ws, f"{prefix}-{i}", f"{prefix}: tin nhắn số {i}") for i in range(count)]
        sent.extend(ids)
        return ids

    async with aiohttp.ClientSession(timeout=SSE_TIMEOUT) as http:
        ws, session = await open_socket(http, gw)
        token = session["token"]
        async with http.get(gw.url("/v1/events?last_event_id=0"), headers=AUTH) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            first = await burst(ws, "a", 5)
            live = SseReader(resp)
            events = await live.read_until(
                lambda evs: set(first) <= set(received_ids(evs)), "message.received of burst a"
            )
            check_stream(events)
            noted = events[-1].id
            conv_id = next(
                e.envelope["data"]["message"]["conversation_id"]
                for e in events
                if e.type == "message.received"
            )

        await burst(ws, "b", 5)
        replies = [await post_reply(http, gw, conv_id, "Shop đã nhận được, chờ chút nhé")]
        gw.kill()
        await ws.close()

        gw = await gateways.start(data)
        ws, session = await open_socket(http, gw, token)
        assert session["conversation_id"] == conv_id
        after_restart = await burst(ws, "c", 5)
        other, _ = await open_socket(http, gw)
        after_restart += await burst(other, "d", 3)
        replies.append(await post_reply(http, gw, conv_id, "Đơn #123 đã xuất kho"))
        await other.close()

        def caught_up(evs: list[SseEvent]) -> bool:
            return set(after_restart) <= set(received_ids(evs)) and set(replies) <= set(
                sent_ids(evs)
            )

        async with http.get(gw.url("/v1/events"), headers={**AUTH, "Last-Event-ID": noted}) as r:
            assert r.status == 200
            resumed = await SseReader(r).read_until(caught_up, "post-restart events")
        check_stream(resumed)
        assert resumed[0].seq > int(noted)

        async with http.get(gw.url("/v1/events?last_event_id=0"), headers=AUTH) as r:
            assert r.status == 200
            full = await SseReader(r).read_until(
                lambda evs: bool(evs) and evs[-1].seq >= resumed[-1].seq, "the full log"
            )
        check_stream(full)
        await ws.close()

    tail = [(e.id, e.type) for e in full if e.seq > int(noted)][: len(resumed)]
    assert [(e.id, e.type) for e in resumed] == tail, "the resumed stream skipped or added events"
    assert any(e.id == noted for e in full), "the full log lost the events before the crash"

    counts = Counter(received_ids(full))
    assert set(counts) == set(sent), "message.received for a message nobody sent, or one missing"
    assert all(c == 1 for c in counts.values()), counts
    assert Counter(sent_ids(full)) == Counter(replies), "each reply is sent exactly once"
    resumed_counts = Counter(received_ids(resumed))
    assert all(resumed_counts[m] == 1 for m in after_restart), resumed_counts
    assert gw.terminate() == 0, gw.stderr_text()
