"""Event-stream tickets: POST /v1/events/tickets, then GET /v1/events?ticket= without an
Authorization header (what a browser's EventSource can do)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config import ConfigError, load_settings
from gateway.app import Gateway
from gateway.cli import AccessLogger
from tests.api.helpers import eventually, post_json
from tests.api.sse import SseEvent, read_event, read_events
from tests.conftest import AUTH, GatewayFactory

Client = TestClient  # type: ignore[type-arg]

METRICS_TOKEN = "metrics-token-0123456789abcdefghijklmnop"


async def ticket_of(client: Client, headers: dict[str, str] = AUTH) -> dict[str, Any]:
    made: dict[str, Any] = await post_json(client, "/v1/events/tickets", None, 201, headers)
    return made


async def error_of(resp: Any) -> str:
    body = await resp.json()
    code: str = body["error"]["code"]
    return code


async def presence(client: Client, status: str) -> None:
    resp = await client.put("/v1/agents/demo/presence", json={"status": status}, headers=AUTH)
    assert resp.status == 200, await resp.text()


async def test_a_ticket_opens_the_stream_once(client: Client, gw: Gateway) -> None:
    made = await ticket_of(client)
    assert set(made) == {"ticket", "expires_at"}
    assert re.fullmatch(r"ogt_[A-Za-z0-9_-]{43}", made["ticket"])
    # RFC 3339, UTC, 60 s from now
    assert made["expires_at"].endswith("Z")
    expires = datetime.fromisoformat(made["expires_at"])
    now = datetime.now(UTC)
    assert now + timedelta(seconds=55) < expires <= now + timedelta(seconds=60)

    resp = await client.get(f"/v1/events?ticket={made['ticket']}&types=agent.*")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert await read_event(resp) == "connected"
    await presence(client, "away")  # the demo agent starts online
    (event,) = await asyncio.wait_for(read_events(resp, 1), 5)
    assert event.event == "agent.presence_changed"
    assert event.data["data"]["agent_id"] == "demo"
    resp.close()

    again = await client.get(f"/v1/events?ticket={made['ticket']}")
    assert again.status == 401
    body = await again.json()
    assert body["error"]["code"] == "invalid_ticket"
    assert "used already" in body["error"]["message"]
    assert "POST /v1/events/tickets" in body["error"]["message"]
    assert made["ticket"] not in await again.text()

    for wrong in ("ogt_" + "A" * 43, "", "x"):
        resp = await client.get(f"/v1/events?ticket={wrong}")
        assert resp.status == 401
        assert await error_of(resp) == "invalid_ticket"


async def test_only_the_ticket_s_hash_is_stored(client: Client, gw: Gateway) -> None:
    made = await ticket_of(client)
    path = Path(gw.store.path)  # type: ignore[attr-defined]

    def rows() -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as conn:
            return list(conn.execute("SELECT * FROM event_tickets"))

    stored = await asyncio.to_thread(rows)
    assert len(stored) == 1
    assert hashlib.sha256(made["ticket"].encode()).hexdigest() in stored[0]
    assert not any(made["ticket"] in str(value) for value in stored[0])
    resp = await client.get(f"/v1/events?ticket={made['ticket']}")
    assert resp.status == 200
    resp.close()
    assert await asyncio.to_thread(rows) == []


async def test_an_expired_ticket_is_refused(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(None, **{"events.ticket_seconds": 1})
    async with TestClient(TestServer(gw.web_app())) as client:
        made = await ticket_of(client)
        expires = datetime.fromisoformat(made["expires_at"])
        assert expires <= datetime.now(UTC) + timedelta(seconds=1)
        await asyncio.sleep(1.1)
        resp = await client.get(f"/v1/events?ticket={made['ticket']}")
        assert resp.status == 401
        assert await error_of(resp) == "invalid_ticket"


def test_ticket_seconds_is_bounded() -> None:
    for bad in (0, 0.5, 601):
        with pytest.raises(ConfigError) as exc:
            load_settings(None, env={}, overrides={"events.ticket_seconds": bad})
        assert [p.key for p in exc.value.problems] == ["events.ticket_seconds"]


async def test_a_ticket_and_a_header_together_are_refused(client: Client) -> None:
    made = await ticket_of(client)
    resp = await client.get(f"/v1/events?ticket={made['ticket']}", headers=AUTH)
    assert resp.status == 400
    assert await error_of(resp) == "ticket_and_token"
    # a request refused anyway does not use the ticket up
    resp = await client.get(f"/v1/events?ticket={made['ticket']}&ephemeral=shouting")
    assert resp.status == 400
    assert await error_of(resp) == "validation_error"
    resp = await client.get(f"/v1/events?ticket={made['ticket']}")
    assert resp.status == 200
    resp.close()


async def test_a_ticket_works_only_where_the_stream_is(client: Client) -> None:
    made = await ticket_of(client)
    resp = await client.get(f"/v1/conversations?ticket={made['ticket']}")
    assert resp.status == 401
    assert await error_of(resp) == "unauthorized"
    resp = await client.post(f"/v1/events/tickets?ticket={made['ticket']}")
    assert resp.status == 401
    resp = await client.get(f"/v1/events?ticket={made['ticket']}")  # still unused
    assert resp.status == 200
    resp.close()


async def test_tokens_that_may_not_read_the_stream_get_no_ticket(
    make_gateway: GatewayFactory,
) -> None:
    gw = await make_gateway(None, **{"server.metrics_token": METRICS_TOKEN})
    async with TestClient(TestServer(gw.web_app())) as client:
        bearer = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        resp = await client.post("/v1/events/tickets", headers=bearer)
        assert resp.status == 403
        assert await error_of(resp) == "insufficient_scope"
        assert (await client.post("/v1/events/tickets")).status == 401
        stored = await asyncio.to_thread(_ticket_rows, Path(gw.store.path))  # type: ignore[attr-defined]
        assert stored == 0


def _ticket_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        count: int = conn.execute("SELECT count(*) FROM event_tickets").fetchone()[0]
        return count


async def test_the_stream_is_the_token_s_and_ends_when_it_is_revoked(
    client: Client, gw: Gateway
) -> None:
    for scope in ("agent", "integration", "admin"):
        body: dict[str, Any] = {"name": scope, "scopes": [scope]}
        if scope == "agent":
            body["agent_id"] = "demo"
        token = await post_json(client, "/v1/tokens", body, 201)
        bearer = {"Authorization": f"Bearer {token['token']}"}
        made = await ticket_of(client, bearer)
        resp = await client.get(f"/v1/events?ticket={made['ticket']}&types=agent.*")
        assert resp.status == 200
        assert await read_event(resp) == "connected"
        await presence(client, "away" if scope != "integration" else "online")
        (event,) = await asyncio.wait_for(read_events(resp, 1), 5)
        assert event.event == "agent.presence_changed"

        # a ticket of a token revoked before it is used opens nothing
        unused = await ticket_of(client, bearer)
        assert (await client.delete(f"/v1/tokens/{token['id']}", headers=AUTH)).status == 204

        assert await asyncio.wait_for(ended(resp), 5) == "ended"
        late = await client.get(f"/v1/events?ticket={unused['ticket']}")
        assert late.status == 401
        assert await error_of(late) == "invalid_ticket"
    await eventually(lambda: _no_streams(gw))


async def ended(resp: Any) -> str:
    while True:
        try:
            item = await read_event(resp)
        except EOFError:
            return "ended"
        assert not isinstance(item, SseEvent), item  # nothing more is sent to it


async def _no_streams(gw: Gateway) -> bool:
    return gw.lifecycle.streams == 0


async def test_ticket_guesses_count_as_failed_logins(make_gateway: GatewayFactory) -> None:
    gw = await make_gateway(
        None,
        **{"server.login_failures_per_minute": 1, "server.login_failures_burst": 3},
    )
    async with TestClient(TestServer(gw.web_app())) as client:
        made = await ticket_of(client)
        for guess in range(3):
            resp = await client.get(f"/v1/events?ticket=ogt_guess{guess}")
            assert resp.status == 401
            assert await error_of(resp) == "invalid_ticket"
        resp = await client.get("/v1/events?ticket=ogt_guess3")
        assert resp.status == 429
        assert await error_of(resp) == "too_many_failed_logins"
        assert int(resp.headers["Retry-After"]) >= 1
        # a good ticket from the blocked address is refused too (and stays unused)
        resp = await client.get(f"/v1/events?ticket={made['ticket']}")
        assert resp.status == 429
        # bearer guesses and ticket guesses are one count
        resp = await client.get("/v1/conversations", headers={"Authorization": "Bearer nope"})
        assert resp.status == 429
        # the ticket was not used by the refusal: a token of the address still works
        assert (await client.get("/v1/conversations", headers=AUTH)).status == 200
        stored = await asyncio.to_thread(_ticket_rows, Path(gw.store.path))  # type: ignore[attr-defined]
        assert stored == 1


async def test_tickets_never_reach_the_logs(gw: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # the access log as `omnigw serve` writes it (aiohttp's own prints whole URLs)
    server = TestServer(gw.web_app())
    await server.start_server(access_log_class=AccessLogger)
    async with TestClient(server) as client:
        made = await ticket_of(client)
        resp = await client.get(f"/v1/events?ticket={made['ticket']}&types=agent.*")
        assert resp.status == 200
        assert await read_event(resp) == "connected"
        resp.close()
        again = await client.get(f"/v1/events?ticket={made['ticket']}")
        assert again.status == 401
        both = await client.get(f"/v1/events?ticket={made['ticket']}", headers=AUTH)
        assert both.status == 400
        await eventually(lambda: _no_streams(gw))
    messages = [r.getMessage() for r in caplog.records]
    # the requests were logged (the access log and the API's own lines) ...
    assert any("/v1/events" in m and " 401 " in m for m in messages), messages
    assert any("/v1/events/tickets" in m and "201" in m for m in messages), messages
    # ... but not the ticket
    logged = "\n".join(messages) + "\n".join(str(r.args) for r in caplog.records)
    assert made["ticket"] not in logged
    assert made["ticket"][4:] not in logged
