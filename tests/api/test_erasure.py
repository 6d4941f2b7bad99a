"""DELETE /v1/contacts/{id} through a real gateway, on SQLite and on PostgreSQL: who may
call it, what it answers, what the API shows afterwards (contact, messages, events, the
visitor's own history, figures), and on SQLite the whole data directory searched byte for
byte for the erased values."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import Gateway
from kernel.models import rfc3339, utcnow
from tests.api.helpers import eventually, get_json, open_visitor, post_json, say
from tests.api.sse import SseEvent, read_event
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "postgres":
        return {"store.url": request.getfixturevalue("pg_url")}
    return {}


@pytest.fixture
async def started(
    store_url: dict[str, str], make_gateway: GatewayFactory
) -> AsyncIterator[tuple[Gateway, Client]]:
    gw = await make_gateway(**store_url)
    async with TestClient(TestServer(gw.web_app())) as client:
        yield gw, client


async def token(client: Client, scope: str) -> dict[str, str]:
    body: dict[str, Any] = {"name": scope, "scopes": [scope]}
    if scope == "agent":
        body["agent_id"] = "demo"
    made = await post_json(client, "/v1/tokens", body, 201)
    return {"Authorization": f"Bearer {made['token']}"}


async def stats(client: Client, since: datetime) -> dict[str, Any]:
    window = f"since={quote(rfc3339(since))}&until={quote(rfc3339(since + timedelta(hours=2)))}"
    figures: dict[str, Any] = await get_json(client, f"/v1/stats?{window}")
    for part in (*figures["channels"], figures["total"]):
        part["queue_wait"].pop("oldest_waiting_seconds")  # grows with the clock
    return figures


async def all_events(client: Client) -> list[SseEvent]:
    """The whole event log, read through the SSE stream from its start."""
    out: list[SseEvent] = []
    headers = {**AUTH, "Last-Event-ID": "0"}
    async with client.get("/v1/events", headers=headers) as resp:
        assert resp.status == 200
        while True:
            try:
                item = await asyncio.wait_for(read_event(resp), 2.0)
            except TimeoutError:
                return out
            if isinstance(item, SseEvent) and item.id is not None:
                out.append(item)


def files_holding(root: Path, values: list[bytes]) -> dict[bytes, list[str]]:
    hits: dict[bytes, list[str]] = {}
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in values:
                if value in data:
                    hits.setdefault(value, []).append(str(path.relative_to(root)))
    return hits


async def test_erasing_a_person_through_the_api(
    started: tuple[Gateway, Client], tmp_path: Path
) -> None:
    gw, client = started
    tag = uuid.uuid4().hex[:10]
    name, email, phone = f"Trần Văn Bình {tag}", f"binh.{tag}@khach.example", "0987 654 321"
    text = f"Tôi ở 45 Hàng Bài, Hoàn Kiếm {tag}"
    ws, session = await open_visitor(client)
    await ws.send_json({"type": "identify", "name": name, "email": email, "phone": phone})
    assert (await say(ws, text, "c1"))["type"] == "ack"

    async def assigned() -> dict[str, Any] | None:
        page = await get_json(client, "/v1/conversations?status=assigned")
        return page["items"][0] if page["items"] else None

    conversation = await eventually(assigned)
    contact_id = conversation["contact_id"]
    contact = await get_json(client, f"/v1/contacts/{contact_id}")
    assert (contact["display_name"], contact["email"]) == (name, email)
    reply = f"Chào anh {name}"
    await post_json(
        client, f"/v1/conversations/{conversation['id']}/messages", {"text": reply}, 202
    )
    frame = await ws.receive_json(timeout=5)
    assert frame["type"] == "message" and frame["message"]["parts"][0]["text"] == reply
    await post_json(client, f"/v1/conversations/{conversation['id']}/resolve", {})
    await ws.close()
    since = utcnow() - timedelta(hours=1)
    before = await stats(client, since)
    assert before["total"]["fcr"]["resolved"] == 1 and before["total"]["frt"]["count"] == 1

    agent = await token(client, "agent")
    refused = await client.delete(f"/v1/contacts/{contact_id}", headers=agent)
    assert refused.status == 403
    integration = await token(client, "integration")
    resp = await client.delete(f"/v1/contacts/{contact_id}", headers=integration)
    report = await resp.json()
    assert resp.status == 200, report
    assert report["contact_id"] == contact_id
    assert report["conversation_ids"] == [conversation["id"]]
    assert report["messages"] == 2

    assert await stats(client, since) == before
    again = await client.delete(f"/v1/contacts/{contact_id}", headers=AUTH)
    assert again.status == 410
    assert (await again.json())["error"]["code"] == "contact_erased"
    unknown = await client.delete("/v1/contacts/ct_nobody", headers=AUTH)
    assert unknown.status == 404

    contact = await get_json(client, f"/v1/contacts/{contact_id}")
    assert contact["display_name"] is None and contact["email"] is None
    assert contact["phone"] is None and contact["identities"] == []
    messages = await get_json(client, f"/v1/conversations/{conversation['id']}/messages")
    assert [m["parts"] for m in messages["items"]] == [[], []]
    refused_reply = await post_json(
        client, f"/v1/conversations/{conversation['id']}/messages", {"text": "còn đó?"}, 409
    )
    assert refused_reply["error"]["code"] == "contact_erased"

    events = await all_events(client)
    erased = [e for e in events if e.event == "contact.erased"]
    assert len(erased) == 1 and erased[0].data["data"]["contact_id"] == contact_id
    assert any(e.event == "message.received" for e in events)
    log = "\n".join(str(e.data) for e in events)
    for value in (name, email, "+84987654321", text, reply, session["visitor_id"]):
        assert value not in log, value

    # The visitor's widget shows nothing of it any more.
    ws, again_session = await open_visitor(client, session["token"])
    assert again_session["visitor_id"] == session["visitor_id"]
    await ws.send_json({"type": "history"})
    history = await ws.receive_json(timeout=5)
    assert history == {"type": "history", "messages": []}
    await ws.close()

    if gw.store.shared:
        return  # PostgreSQL's files: tests/store/test_erasure.py
    values = [v.encode() for v in (name, email, "+84987654321", text, reply)]
    assert files_holding(tmp_path / "data", values) == {}
